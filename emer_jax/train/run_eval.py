"""Evaluating a run: its outputs on a part of its split, the validation score it is selected on,
and the files a tested run writes (predictions, `runs/<run>.json`, `results.json` and reports)."""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from emer_jax import logs, paths
from emer_jax import workdir as workdir_lib
from emer_jax.data import pipeline
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation import predictions, report
from emer_jax.protocols import TARGETS, get_protocol
from emer_jax.train import steps
from emer_jax.train.writers import split_losses

LOWER_IS_BETTER = ("mae", "mse", "rmse")


def predict(eval_step, state, data, indices, config, targets, mesh, desc=None) -> dict:
  """Model outputs for `indices` (in that order), gathered on every process; a bar if `desc`.

  Each row is placed by the batch's `index`; padding rows (`mask` false) are dropped.
  """
  outputs, index, mask = [], [], []
  num_batches = -(-len(indices) // config.eval_batch_size)
  bar = logs.progress(num_batches, desc, unit="batch", leave=False) if desc else None
  for batch in pipeline.eval_dataset(data, indices, config, targets):
    if bar is not None:
      bar.update(1)
    index.append(multihost_utils.process_allgather(batch["index"], tiled=True))
    mask.append(multihost_utils.process_allgather(batch["mask"], tiled=True))
    inputs = {k: v for k, v in batch.items() if k in steps.MODEL_INPUTS}
    out = eval_step(state, pipeline.to_global(inputs, mesh))
    outputs.append(multihost_utils.process_allgather(out, tiled=True))
  if bar is not None:
    bar.close()
  outputs = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
  return in_order(outputs, np.concatenate(index), np.concatenate(mask), indices)


def in_order(outputs: dict, index, mask, indices) -> dict:
  """Rows of `outputs` (one per evaluated item, its sample `index`; padding where `mask` is
  false) rearranged to follow `indices`."""
  mask = np.asarray(mask).astype(bool)
  row = {int(i): r for r, i in enumerate(np.asarray(index)) if mask[r]}
  order = np.asarray([row[int(i)] for i in indices], dtype=np.int64)
  return {k: np.asarray(v)[order] for k, v in outputs.items()}


def labels_of(data, indices, targets) -> dict:
  return {name: data.index[name][indices] for name in targets}


def outputs_and_metrics(eval_step, state, data, indices, config, targets, mesh, desc=None):
  """(outputs, metrics) on `indices`; a progress bar labelled `desc` if given."""
  outputs = predict(eval_step, state, data, indices, config, targets, mesh, desc)
  return outputs, metrics_lib.target_metrics(labels_of(data, indices, targets), outputs)


def validation(config, data, indices, targets, outputs) -> tuple[dict, dict, float]:
  """(metrics, task losses, selection score) of a run's validation outputs."""
  metrics = metrics_lib.target_metrics(labels_of(data, indices, targets), outputs)
  losses = split_losses(data.index, indices, outputs, dict(config.loss.head_weights))
  return metrics, losses, selection_score(config, metrics)


def selection_score(config, metrics: dict) -> float:
  """Higher is better: the mean of the selection metric over the protocol's targets."""
  protocol = get_protocol(config.protocol)
  metric = config.selection_metric or ("war" if protocol.kind == "classification" else "mae")
  value = float(np.mean([metrics[t][metric] for t in protocol.targets]))
  return -value if metric in LOWER_IS_BETTER else value


def masked_of(index: dict, indices):
  """(N,) true where the genuine emotion differs from the displayed one (ER ≠ FER 7-class), for
  a dataset with both labels (EMER); else None."""
  if "er_emotion" not in index or "fer_emotion" not in index:
    return None
  return index["er_emotion"][indices] != index["fer_emotion"][indices]


def write_run(out_dir, result, data, indices, targets, outputs):
  """The run's predictions CSV, then `runs/<run>.json` with masked-sample metrics added."""
  masked = masked_of(data.index, indices)
  labels = labels_of(data, indices, targets)
  for name, values in metrics_lib.masked_metrics(labels, outputs, masked).items():
    result["metrics"][name] |= values
  fold, seed = result["fold"], result["seed"]
  with paths.writing(workdir_lib.predictions_path(out_dir, fold, seed), "the test predictions"):
    _write_predictions(out_dir, fold, seed, data, indices, targets, outputs, masked)
    os.makedirs(workdir_lib.runs_dir(out_dir), exist_ok=True)
  path = workdir_lib.run_json_path(out_dir, fold, seed, result.get("point"))
  workdir_lib.write_json(path, result, "the run's record")


def _write_predictions(out_dir, fold, seed, data, indices, targets, outputs, masked):
  if jax.process_index():
    return
  classification = [t for t in targets if TARGETS[t].kind == "classification"]
  probabilities = {t: jax.nn.softmax(outputs[t]) for t in classification}
  predictions.write_predictions(
    out_dir,
    fold,
    seed,
    sample_id=data.index["sample_id"][indices],
    subject_id=data.index["subject_id"][indices],
    y_true=labels_of(data, indices, targets),
    y_pred=outputs,
    probabilities=jax.device_get(probabilities),
    masked=masked,
  )


def write_results(config, out_dir, runs, recorded: dict, sweep: dict | None = None) -> dict:
  """results.json (with `recorded`, the config the runs were started with, and a sweep's points
  and selected point per test fold), then reports."""
  results = {
    "protocol": config.protocol,
    "targets": list(get_protocol(config.protocol).targets),
    "runs": runs,
    **metrics_lib.summarize([run["metrics"] for run in runs]),
    **({} if sweep is None else {"sweep": sweep}),
    "config": recorded,
  }

  def save(results):
    workdir_lib.write_json(workdir_lib.results_path(out_dir), results, "the results")

  logs.phase(f"writing reports to {out_dir}")
  return report.write_run_reports(out_dir, results, save=save)
