"""The fit/evaluate loop: one run per (seed, fold); select on validation; touch test once.

Workdir layout:
  config.json                  the resolved config
  metrics.jsonl                one line per logged step: step, fold, seed, train/…, val/…
  tensorboard/fold{k}_seed{s}  TensorBoard events
  checkpoints/fold{k}_seed{s}/latest   full training state (resume)
  checkpoints/fold{k}_seed{s}/best     model weights chosen on validation
  runs/fold{k}_seed{s}.json    a finished run's test metrics (a rerun skips finished runs)
  runs/fold{k}_seed{s}.normalisation.json   eye/gaze mean and std of the run's training part
  results.json                 every run's test metrics, their mean and std
"""

import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AxisType

from emer_jax import models
from emer_jax.data import pipeline
from emer_jax.data.source import open_source, prepared_builder
from emer_jax.data.splits import make_split
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation import predictions, report
from emer_jax.protocols import TARGETS, get_protocol, head_sizes
from emer_jax.train import checkpoint, optim, steps
from emer_jax.train.writers import MetricWriter

LOWER_IS_BETTER = ("mae", "mse", "rmse")


class NonFiniteError(FloatingPointError):
  pass


def make_mesh(config) -> jax.sharding.Mesh:
  """A ('data', 'model') mesh over all devices; -1 on one axis takes what the other leaves."""
  count = jax.device_count()
  data, model = config.mesh.data, config.mesh.model
  if data == -1:
    data = count // model
  if model == -1:
    model = count // data
  if data * model != count:
    raise ValueError(f"mesh {data}×{model} does not cover the {count} devices.")
  return jax.make_mesh((data, model), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def run_targets(config) -> tuple[str, ...]:
  protocol = get_protocol(config.protocol)
  return tuple(dict.fromkeys(protocol.targets + protocol.auxiliary + tuple(config.extra_targets)))


def _json_safe(obj):
  """NaN (e.g. the std of a single run) becomes null, so the files are strict JSON."""
  if isinstance(obj, dict):
    return {k: _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, list | tuple):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def _write_json(path: str, obj):
  """Writes atomically (a kill never leaves half a file), from process 0 only."""
  if jax.process_index():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(_json_safe(obj), f, indent=2, allow_nan=False)
  os.replace(tmp, path)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains and tests one model per (seed, fold) and writes `results.json`; returns it."""
  workdir = os.path.abspath(workdir)
  os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
  _write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  mesh = make_mesh(config)
  if jax.process_index() == 0:  # builds a missing synthetic dataset once
    prepared_builder(config.dataset, config.data_dir)
  multihost_utils.sync_global_devices("dataset ready")
  data = open_source(config.dataset, config.data_dir, prepare=False, cache=config.input.cache)
  runs = [
    _run(config, workdir, data, mesh, fold=fold, seed=seed)
    for seed in config.seeds
    for fold in config.folds
  ]
  results = {
    "protocol": config.protocol,
    "targets": list(get_protocol(config.protocol).targets),
    "runs": runs,
    **metrics_lib.summarize([run["metrics"] for run in runs]),
  }
  results = report.write_run_reports(workdir, results)
  _write_json(os.path.join(workdir, "results.json"), results)
  return results


def _selection_score(config, metrics: dict) -> float:
  """Higher is better: the mean of the selection metric over the protocol's targets."""
  protocol = get_protocol(config.protocol)
  metric = config.selection_metric or ("war" if protocol.kind == "classification" else "mae")
  value = float(np.mean([metrics[t][metric] for t in protocol.targets]))
  return -value if metric in LOWER_IS_BETTER else value


def predict(eval_step, state, data, indices, config, targets, mesh) -> dict:
  """Model outputs for `indices` (in that order), gathered on every process."""
  outputs = []
  for batch in pipeline.eval_dataset(data, indices, config, targets):
    batch = {k: v for k, v in batch.items() if k in steps.MODEL_INPUTS}
    out = eval_step(state, pipeline.to_global(batch, mesh))
    outputs.append(multihost_utils.process_allgather(out, tiled=True))
  return {k: np.concatenate([o[k] for o in outputs])[: len(indices)] for k in outputs[0]}


def _evaluate(eval_step, state, data, indices, config, targets, mesh):
  outputs = predict(eval_step, state, data, indices, config, targets, mesh)
  labels = {name: data.index[name][indices] for name in targets}
  return outputs, metrics_lib.target_metrics(labels, outputs)


def init_state(config, heads: dict, seed: int, total_steps: int, mesh):
  """(graphdef, abstract state, state) of model and optimiser, created sharded on `mesh`.

  Parameters land where their `nnx.with_partitioning` annotations put them; the abstract state
  carries those shardings, so checkpoints restore onto the same layout.
  """
  dtype = jnp.dtype(config.dtype)

  def init():
    model = models.build_model(
      config.model, heads=heads, rngs=nnx.Rngs(params=seed, dropout=seed + 1), dtype=dtype
    )
    optimizer = nnx.Optimizer(model, optim.make_optimizer(config, total_steps), wrt=nnx.Param)
    return model, optimizer

  with jax.set_mesh(mesh):
    graphdef, abstract = nnx.get_abstract_model(init, mesh)
    state = jax.jit(
      lambda: nnx.state(init()), out_shardings=nnx.get_named_sharding(abstract, mesh)
    )()
  return graphdef, abstract, state


def _restore_latest(manager, abstract_state, train_iter):
  """Restores the newest readable checkpoint; warns about and deletes unreadable newer ones."""
  unreadable = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=grain.checkpoint.CheckpointRestore(train_iter),
          meta=ocp.args.JsonRestore(),
        ),
      )
      break
    except Exception as e:  # noqa: BLE001  (any unreadable checkpoint)
      logging.warning(
        "Checkpoint %d in %s is unreadable (%s: %s); trying an earlier one.",
        step,
        manager.directory,
        type(e).__name__,
        e,
      )
      unreadable.append(step)
  else:
    step, restored = 0, None
  for bad in unreadable:  # training will write these steps again
    manager.delete(bad)
  if restored is None:
    return 0, None, None
  return step, restored.state, restored.meta


def _check_finite(pending):
  for step, finite_loss, finite_grads in pending:
    bad = [n for n, ok in (("loss", finite_loss), ("gradients", finite_grads)) if not bool(ok)]
    if bad:
      raise NonFiniteError(
        f"Non-finite {' and '.join(bad)} at step {step}; the update was skipped and the run "
        "stopped. The last good checkpoint is kept."
      )


def _run(config, workdir, data, mesh, *, fold: int, seed: int) -> dict:
  name = f"fold{fold}_seed{seed}"
  done_path = os.path.join(workdir, "runs", f"{name}.json")
  if os.path.exists(done_path):
    with open(done_path) as f:
      return json.load(f)
  targets = run_targets(config)
  split = make_split(
    data.index["fold"],
    data.index["subject_id"],
    fold,
    scheme=config.fold_scheme,
    val_fraction=config.val_fraction,
    seed=config.seed,
  )
  data = _normalised(data, split.train, config, pipeline.normalisation_path(workdir, fold, seed))
  steps_per_epoch = max(len(split.train) // config.batch_size, 1)
  total_steps = (
    config.total_steps if config.total_steps > 0 else config.num_epochs * steps_per_epoch
  )
  if config.mode == "eval":
    total_steps = 0
  eval_every = config.eval_every_steps or steps_per_epoch
  dtype = jnp.dtype(config.dtype)

  graphdef, abstract, state = init_state(config, head_sizes(targets), seed, total_steps, mesh)
  with jax.set_mesh(mesh):
    if config.init_checkpoint:
      model, optimizer = nnx.merge(graphdef, state)
      checkpoint.restore_model(config.init_checkpoint, model)
      state = nnx.state((model, optimizer))

    train_iter = iter(pipeline.train_dataset(data, split.train, config, targets, seed=seed))
    run_dir = os.path.join(workdir, "checkpoints", name)
    options = dict(create=True, enable_async_checkpointing=True)
    latest = ocp.CheckpointManager(
      os.path.join(run_dir, "latest"),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, **options),
    )
    best = ocp.CheckpointManager(
      os.path.join(run_dir, "best"), options=ocp.CheckpointManagerOptions(max_to_keep=1, **options)
    )
    with latest, best:  # closing waits for asynchronous saves, also when training fails
      start, restored, meta = (0, None, None)
      if total_steps:
        start, restored, meta = _restore_latest(latest, abstract, train_iter)
      if restored is not None:
        state = restored
        logging.info("Resuming %s from step %d.", name, start)
      else:
        train_iter = iter(pipeline.train_dataset(data, split.train, config, targets, seed=seed))
      meta = meta or {"best_score": None, "best_step": None}
      for step in best.all_steps():
        if step > start:  # chosen after the checkpoint we resume from: it will be chosen again
          best.delete(step)

      train_step = steps.make_train_step(
        graphdef,
        dtype=dtype,
        alpha=config.loss.alpha,
        beta=config.loss.beta,
        head_weights=dict(config.loss.head_weights),
      )
      eval_step = steps.make_eval_step(graphdef, dtype=dtype)
      schedule = optim.learning_rate_schedule(config, total_steps)
      writer = MetricWriter(workdir, name, {"fold": fold, "seed": seed}, resume_step=start)
      progress = _progress(start, total_steps, name)
      pending = []
      for step in range(start + 1, total_steps + 1):
        batch = pipeline.to_global(next(train_iter), mesh)
        lam = optim.grl_lambda(config.grl, step - 1, total_steps)
        state, metrics = train_step(state, batch, lam)
        pending.append((step, metrics["finite/loss"], metrics["finite/grads"]))
        progress.update(1)
        if step == start + 1:  # throughput is timed from the end of the compiling first step
          jax.block_until_ready(metrics)
          tick, tick_step = time.perf_counter(), step
        if step % config.log_every_steps == 0 or step == total_steps:
          _check_finite(jax.device_get(pending))
          pending = []
          logged = {
            f"train/{k}": v for k, v in jax.device_get(metrics).items() if "finite" not in k
          }
          logged |= {"train/learning_rate": schedule(step - 1), "train/grl_lambda": lam}
          if step > tick_step:
            now = time.perf_counter()
            rate = (step - tick_step) / (now - tick)
            logged |= {"perf/steps_per_s": rate, "perf/samples_per_s": rate * config.batch_size}
            tick, tick_step = now, step
          writer.write(step, logged)
          progress.set_postfix(loss=f"{float(logged['train/loss/total']):.4f}")
        if len(split.val) and (step % eval_every == 0 or step == total_steps):
          _, val = _evaluate(eval_step, state, data, split.val, config, targets, mesh)
          score = _selection_score(config, val)
          writer.write(step, metrics_lib.flatten_scalars(val, "val/"))
          if meta["best_score"] is None or score > meta["best_score"]:
            meta = {"best_score": score, "best_step": step}
            best.save(step, args=ocp.args.StandardSave(state[0]))
        if step % config.checkpoint_every_steps == 0 or step == total_steps:
          _check_finite(jax.device_get(pending))
          pending = []
          latest.save(
            step,
            args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              data=grain.checkpoint.CheckpointSave(train_iter),
              meta=ocp.args.JsonSave(meta),
            ),
          )
      progress.close()
      best.wait_until_finished()
      if meta["best_step"] is not None:
        chosen = best.restore(meta["best_step"], args=ocp.args.StandardRestore(abstract[0]))
        state = nnx.State({0: chosen, 1: state[1]})
      outputs, test = _evaluate(eval_step, state, data, split.test, config, targets, mesh)
      writer.close()
  masked = data.index["er_emotion"][split.test] != data.index["fer_emotion"][split.test]
  labels = {name: data.index[name][split.test] for name in targets}
  for name, values in metrics_lib.masked_metrics(labels, outputs, masked).items():
    test[name] |= values

  result = {
    "fold": fold,
    "seed": seed,
    "selected_step": meta["best_step"] or total_steps,
    "num_train": len(split.train),
    "num_val": len(split.val),
    "num_test": len(split.test),
    "metrics": test,
  }
  _write_predictions(workdir, fold, seed, data, split.test, targets, outputs)
  _write_json(done_path, result)
  return result


def _normalised(data, train_indices, config, path):
  """`data` with the statistics of the training part, recorded at `path`.

  A resumed run finds them recorded already; if they differ, the data changed under it.
  """
  data = pipeline.with_normalisation(data, train_indices, config)
  if os.path.exists(path):
    recorded = pipeline.load_normalisation(path)
    if recorded.to_dict() != data.normalisation.to_dict():
      raise ValueError(
        f"{path} holds other normalisation statistics than this run's training part has now: "
        "the dataset or the split changed since the run started. Use a new workdir."
      )
  _write_json(path, data.normalisation.to_dict())
  return data


def _write_predictions(workdir, fold, seed, data, indices, targets, outputs):
  if jax.process_index():
    return
  classification = [t for t in targets if TARGETS[t].kind == "classification"]
  probabilities = {t: jax.nn.softmax(outputs[t]) for t in classification}
  predictions.write_predictions(
    workdir,
    fold,
    seed,
    sample_id=data.index["sample_id"][indices],
    subject_id=data.index["subject_id"][indices],
    y_true={t: data.index[t][indices] for t in targets},
    y_pred=outputs,
    probabilities=jax.device_get(probabilities),
  )


def _progress(start, total, name):
  from tqdm.auto import tqdm

  return tqdm(
    total=total,
    initial=start,
    desc=name,
    unit="step",
    disable=jax.process_index() != 0,
    dynamic_ncols=True,
  )
