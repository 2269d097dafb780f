"""A finished run directory's reports: tables, reference-style metrics and plots.

`write_run_reports(workdir, results)` reads the predictions CSVs and `metrics.jsonl` that the
trainer wrote and adds, in the workdir (paths from `emer_jax.workdir`):
  results.csv, results.md       per fold and seed, then mean and std
  per_class_recall.csv          per run and classification target, one column per class
  plots/confusion_<target>_fold{k}_seed{s}.png      counts and row-normalised
  plots/confusion_<target>_all.png                  summed over the runs, if more than one
  plots/recall_<target>_fold{k}_seed{s}.png         per-class recall, counts and chance
  plots/scatter_<target>_fold{k}_seed{s}.png        regression truth against prediction
  plots/learning_curves_fold{k}_seed{s}.png         from metrics.jsonl
and returns the results with `ci95` (95 % bootstrap intervals of the pooled means, and of each
run's metrics; `emer_jax.evaluation.bootstrap`) and `reference_style`: the authors' per-batch
aggregation, labelled as such and recomputed
from the predictions in evaluation order. Those numbers depend on batch size and sample order;
they are kept apart from the pooled metrics and only serve comparison with the authors' tables.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from emer_jax import paths
from emer_jax import workdir as workdir_lib
from emer_jax.evaluation import bootstrap, plots, predictions, tables
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.protocols import TARGETS

REFERENCE_BATCH_SIZE = 16
_REFERENCE_NOTE = (
  "Reference-style metrics: the unweighted mean over consecutive test batches of {n} (in "
  "evaluation order) of per-batch scores, as in the authors' evaluation code, then mean and "
  "std over runs. Not pooled; not comparable with the pooled metrics."
)


def reference_style(workdir, results, batch_size: int = REFERENCE_BATCH_SIZE) -> dict:
  """The `ref_` metrics of every run, from its predictions CSV, with their mean and std."""
  runs = []
  for run in results["runs"]:
    frame = predictions.read_predictions(workdir_lib.predictions_path(workdir, *_key(run)))
    computed = predictions.metrics_from_predictions(frame, reference_batch_size=batch_size)
    scores = {
      target: {k: v for k, v in values.items() if k.startswith(metrics_lib.REFERENCE_PREFIX)}
      for target, values in computed.items()
    }
    runs.append({"fold": run["fold"], "seed": run["seed"], "metrics": scores})
  return {
    "note": _REFERENCE_NOTE.format(n=batch_size),
    "batch_size": batch_size,
    "runs": runs,
    **metrics_lib.summarize([run["metrics"] for run in runs]),
  }


def _key(run) -> tuple[int, int]:
  return run["fold"], run["seed"]


def _merged(pooled, reference):
  """One results dict whose metrics hold both the pooled and the `ref_` values."""
  runs = []
  for run, ref in zip(pooled["runs"], reference["runs"], strict=True):
    merged = {t: {**m, **ref["metrics"].get(t, {})} for t, m in run["metrics"].items()}
    runs.append({**run, "metrics": merged})
  merged = {
    "runs": runs,
    "mean": pooled["mean"] | reference["mean"],
    "std": pooled["std"] | reference["std"],
  }
  return merged | ({"ci95": pooled["ci95"]} if "ci95" in pooled else {})


def write_tables(workdir, results) -> None:
  """results.csv (pooled and `ref_` columns) and results.md (a table for each)."""
  reference = results["reference_style"]
  csv_path, md_path = workdir_lib.results_table_paths(workdir)
  tables.results_frame(_merged(results, reference)).to_csv(csv_path, index=False)
  text = [
    f"# {results['protocol']}: test metrics per fold and seed",
    "",
    "Pooled over each test fold; selection on validation only.",
    "",
    tables.results_markdown(results),
    f"## Reference-style (per batch of {reference['batch_size']})",
    "",
    reference["note"],
    "",
    tables.results_markdown(reference),
  ]
  Path(md_path).write_text("\n".join(text))


def write_per_class_recall(workdir, results) -> Path:
  rows = []
  for run in results["runs"]:
    for target, values in run["metrics"].items():
      if TARGETS[target].kind == "classification":
        recall = dict(zip(TARGETS[target].class_names, values["per_class_recall"], strict=True))
        rows.append({"fold": run["fold"], "seed": run["seed"], "target": target, **recall})
  path = Path(workdir_lib.per_class_recall_path(workdir))
  pd.DataFrame(rows).to_csv(path, index=False)
  return path


def write_plots(workdir, results) -> None:
  def out(name):
    return Path(workdir_lib.plot_path(workdir, name))

  summed = {}
  metrics_jsonl = Path(workdir_lib.metrics_path(workdir))
  for run in results["runs"]:
    fold, seed = _key(run)
    tag = workdir_lib.run_name(fold, seed)
    title = f"{results['protocol']} fold {fold} seed {seed}"
    frame = None
    for target, values in run["metrics"].items():
      spec = TARGETS[target]
      if spec.kind == "classification":
        names = spec.class_names
        plots.plot_confusion(
          values["confusion"], names, out(f"confusion_{target}_{tag}"), f"{target}, {title}"
        )
        plots.plot_per_class_recall(
          values["per_class_recall"],
          names,
          out(f"recall_{target}_{tag}"),
          f"{target}, {title}",
          support=np.asarray(values["confusion"]).sum(1),
        )
        summed[target] = summed.get(target, 0) + np.asarray(values["confusion"])
      else:
        if frame is None:
          frame = predictions.read_predictions(workdir_lib.predictions_path(workdir, fold, seed))
        plots.plot_regression_scatter(
          frame[target],
          frame[predictions.PRED_PREFIX + target],
          out(f"scatter_{target}_{tag}"),
          f"{target}, {title}",
        )
    point = run.get("point")  # a sweep's runs: the point selected for the fold
    if metrics_jsonl.exists() and plots.read_metrics_jsonl(metrics_jsonl, fold, seed, point):
      plots.plot_learning_curves(
        metrics_jsonl,
        out(f"learning_curves_{tag}"),
        fold,
        seed,
        selected_step=run.get("selected_step"),
        point=point,
      )
  if len(results["runs"]) == 1:
    return  # the sum over one run is that run's own matrix
  for target, confusion in summed.items():
    title = f"{target}, {results['protocol']}, all {len(results['runs'])} runs"
    plots.plot_confusion(
      confusion, TARGETS[target].class_names, out(f"confusion_{target}_all"), title
    )


def write_run_reports(workdir, results, save=None, batch_size: int = REFERENCE_BATCH_SIZE) -> dict:
  """Writes every report of a finished run directory; returns results plus `reference_style`.

  `save(results)`, e.g. writing results.json, runs before the tables and plots, so that a
  failing plot loses nothing (it is logged as a warning). Process 0 only (it holds the
  predictions files): other processes get `results` back as is.
  """
  import jax
  from absl import logging

  if jax.process_index():
    return results
  workdir = os.fspath(workdir)
  results = bootstrap.results_intervals(workdir, results)
  results = {**results, "reference_style": reference_style(workdir, results, batch_size)}
  if save is not None:
    save(results)
  with paths.writing(workdir_lib.results_table_paths(workdir)[1], "the result tables"):
    write_tables(workdir, results)
  with paths.writing(workdir_lib.per_class_recall_path(workdir), "the per-class recall"):
    write_per_class_recall(workdir, results)
  try:
    with paths.writing(workdir_lib.plots_dir(workdir), "the plots"):
      write_plots(workdir, results)
  except paths.PathError:
    raise
  except Exception as e:  # noqa: BLE001  (a plot is a view of results already written)
    logging.warning(
      "The plots in %s were not all written (%s: %s).",
      workdir_lib.plots_dir(workdir),
      type(e).__name__,
      e,
    )
  return results
