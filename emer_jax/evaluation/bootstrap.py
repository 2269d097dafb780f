"""Bootstrap intervals of pooled test metrics, and a paired bootstrap test between models.

The unit of resampling is a test sample. A resample draws, in each test fold independently, as
many of that fold's samples as it holds, with replacement; every run (seed) of a fold shares the
fold's draw. A metric is computed per run on its resampled fold and averaged over runs, as
`results.json`'s `mean` is, so the 2.5 and 97.5 percentiles of the resampled means give the 95 %
interval of the reported mean (percentile bootstrap, `NUM_RESAMPLES` resamples, seeded per fold
with `[seed, fold]`).

Two models tested on the same samples are compared by resampling both with the same draws: the
interval of (best − other), oriented so that positive favours the best; the other model is not
significantly different from the best when that interval contains 0.
"""

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from emer_jax import workdir as workdir_lib
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation import predictions, tables
from emer_jax.protocols import TARGETS

NUM_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
METHOD = (
  "percentile bootstrap over test samples, resampled within each fold (runs of a fold share the "
  "draw), {n} resamples, seed {seed}"
)
# The pooled metrics with intervals, by target kind (`metrics.classification_scores`,
# `metrics.regression_scores`).
METRICS = {
  "classification": ("war", "uar", "f1_weighted", "f1_macro"),
  "regression": ("mae", "mse", "rmse", "pcc", "ccc"),
}


def draws(num_samples: int, fold: int, seed: int = SEED, num: int = NUM_RESAMPLES) -> np.ndarray:
  """(num, num_samples) sample positions: `num` resamples with replacement of one fold."""
  return np.random.default_rng([seed, fold]).integers(0, num_samples, (num, num_samples))


def resampled_scores(
  y_true, y_pred, target: str, positions: np.ndarray, rows=None
) -> dict[str, np.ndarray]:
  """Each pooled metric of `target` on every resample: {metric: (num,)}.

  y_true, y_pred: (N,) truths and predictions (class indices or values) of one run;
  positions: (num, N) resampled positions (`draws`); rows: optional (N,) booleans: then only the
  drawn samples where `rows` holds count (e.g. the masked ones), and only the
  `metrics.SUBSET_METRICS` are returned.
  """
  spec = TARGETS[target]
  if spec.kind == "classification":
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    num_classes = len(spec.class_names)
    if rows is not None:  # the other samples go to an extra class, cut off below
      y_true, y_pred = (np.where(rows, y, num_classes) for y in (y_true, y_pred))
    confusion = metrics_lib.batched_confusion(
      y_true[positions], y_pred[positions], num_classes + (rows is not None)
    )
    scores = metrics_lib.classification_scores(confusion[..., :num_classes, :num_classes])
  else:
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if rows is not None:
      weight = np.asarray(rows, np.float64)[positions]
      with np.errstate(invalid="ignore", divide="ignore"):
        error = np.abs(y_pred - y_true)[positions]
        return {"mae": (error * weight).sum(-1) / weight.sum(-1)}
    scores = metrics_lib.regression_scores(y_true[positions], y_pred[positions])
  if rows is None:
    return scores
  return {m: scores[m] for m in metrics_lib.SUBSET_METRICS[spec.kind]}


def interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
  """[lo, hi]: the central `level` percentile interval of `values`, NaN resamples left out."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if not values.size:
    return [float("nan"), float("nan")]
  tail = (1 - level) / 2 * 100
  lo, hi = np.percentile(values, [tail, 100 - tail])
  return [float(lo), float(hi)]


Runs = Sequence[tuple[int, pd.DataFrame]]  # (fold, predictions frame) per run


def _fold_draws(runs: Runs, seed: int, num: int) -> dict[int, np.ndarray]:
  out = {}
  for fold, frame in runs:
    if fold in out and len(out[fold][0]) != len(frame):
      raise ValueError(f"Runs of fold {fold} hold different numbers of test samples.")
    out.setdefault(fold, draws(len(frame), fold, seed, num))
  return out


def _run_scores(runs: Runs, fold_draws) -> list[dict[str, np.ndarray]]:
  """Per run, {'target/metric': (num,)} on that fold's resamples."""
  out = []
  for fold, frame in runs:
    subsets = {"": None}
    if predictions.MASKED in frame:  # `metrics.masked_metrics`' subsets
      rows = metrics_lib.subset_rows(frame[predictions.MASKED].to_numpy().astype(bool))
      subsets |= {f"_{name}": r for name, r in rows.items()}
    scores = {}
    for target in predictions.targets_in(frame):
      truth, pred = frame[target].to_numpy(), frame[predictions.PRED_PREFIX + target].to_numpy()
      for suffix, rows in subsets.items():
        found = resampled_scores(truth, pred, target, fold_draws[fold], rows)
        scores |= {f"{target}/{metric}{suffix}": values for metric, values in found.items()}
    out.append(scores)
  return out


def intervals(runs: Runs, seed: int = SEED, num: int = NUM_RESAMPLES) -> dict:
  """95 % intervals of the pooled metrics: {'ci95': {...}, 'runs_ci95': [{...} per run]}.

  `ci95` holds those of the mean over runs, keyed like `results['mean']`
  ('er_emotion/war': [lo, hi]); `runs_ci95` those of each run alone, in the order of `runs`.
  """
  fold_draws = _fold_draws(runs, seed, num)
  per_run = _run_scores(runs, fold_draws)
  mean = {name: np.mean([run[name] for run in per_run], axis=0) for name in per_run[0]}
  return {
    "ci95": {name: interval(values) for name, values in mean.items()},
    "runs_ci95": [{name: interval(v) for name, v in run.items()} for run in per_run],
  }


def read_runs(workdir, runs: Sequence[Mapping]) -> list[tuple[int, pd.DataFrame]]:
  """(fold, predictions frame) of each run of a results dict, from `workdir`'s CSVs."""
  return [
    (
      run["fold"],
      predictions.read_predictions(workdir_lib.predictions_path(workdir, run["fold"], run["seed"])),
    )
    for run in runs
  ]


def results_intervals(workdir, results: Mapping, seed: int = SEED, num: int = NUM_RESAMPLES):
  """`results` with `ci95` (of each mean), each run's `ci95`, and `bootstrap` (how)."""
  found = intervals(read_runs(workdir, results["runs"]), seed, num)
  runs = [{**run, "ci95": ci} for run, ci in zip(results["runs"], found["runs_ci95"], strict=True)]
  how = {"level": LEVEL, "resamples": num, "seed": seed, "method": METHOD.format(n=num, seed=seed)}
  return {**results, "runs": runs, "ci95": found["ci95"], "bootstrap": how}


def _by_sample(runs: Runs) -> Runs:
  """Each run's rows ordered by sample id, so that the same draws pick the same samples."""
  return [(fold, f.sort_values("sample_id", kind="stable", ignore_index=True)) for fold, f in runs]


def _check_paired(best: Runs, other: Runs) -> None:
  samples = {}
  for fold, frame in best:
    samples.setdefault(fold, frame["sample_id"].tolist())
  for fold, frame in other:
    if fold not in samples:
      raise ValueError(f"Fold {fold} is tested by one model only; a paired test needs both.")
    if frame["sample_id"].tolist() != samples[fold]:
      raise ValueError(f"The two models' fold-{fold} test samples differ; they are not paired.")
  if {fold for fold, _ in other} != set(samples):
    raise ValueError(
      f"The models are tested on folds {sorted(samples)} and {[f for f, _ in other]}."
    )


def _means(runs: Runs, seed: int, num: int) -> dict[str, np.ndarray]:
  """{'target/metric': (num,)}: the mean over runs of each metric, per resample."""
  per_run = _run_scores(runs, _fold_draws(runs, seed, num))
  return {name: np.mean([run[name] for run in per_run], axis=0) for name in per_run[0]}


def paired_difference(
  best: Runs, other: Runs, name: str, higher_is_better: bool, seed: int = SEED, num=NUM_RESAMPLES
) -> list[float]:
  """95 % interval of (best − other) in metric `name` ('target/metric'), positive when `best`
  is better, both resampled with the same draws of the same test samples (matched by id)."""
  best, other = _by_sample(best), _by_sample(other)
  _check_paired(best, other)
  a, b = _means(best, seed, num)[name], _means(other, seed, num)[name]
  return interval((a - b) if higher_is_better else (b - a))


def mark_ties(records: Sequence[Mapping], workdirs: Mapping, seed: int = SEED, num=NUM_RESAMPLES):
  """Comparison records with `tied` (not significantly different from the column's best, the best
  included) where a paired test applies; records of other columns are returned unchanged.

  records: dicts with model, protocol, metric ('target/metric'), mean (see `tables`);
  workdirs: (protocol, model) -> the cell's workdir (its results.json and predictions CSVs).
  Raises ValueError when two cells of a protocol were tested on different samples.
  """
  out = [dict(r) for r in records]
  cells_runs, cells_means = {}, {}

  def means_of(key):
    if key not in cells_means:
      with open(workdir_lib.results_path(workdirs[key])) as f:
        cells_runs[key] = _by_sample(read_runs(workdirs[key], json.load(f)["runs"]))
      cells_means[key] = _means(cells_runs[key], seed, num)
    return cells_means[key]

  columns = dict.fromkeys((r["protocol"], r["metric"]) for r in out)
  for protocol, name in columns:
    cells = [r for r in out if (r["protocol"], r["metric"]) == (protocol, name)]
    direction = tables.higher_is_better(name)
    target, _, metric = name.rpartition("/")
    if direction is None or target not in TARGETS:
      continue
    kind = TARGETS[target].kind
    subset_metrics = {
      f"{m}_{subset}" for m in metrics_lib.SUBSET_METRICS[kind] for subset in metrics_lib.SUBSETS
    }
    if metric not in METRICS[kind] and metric not in subset_metrics:
      continue
    finite = [r for r in cells if np.isfinite(r["mean"])]
    if not finite:
      continue
    best = (max if direction else min)(finite, key=lambda r: r["mean"])
    best_key = (protocol, best["model"])
    for r in cells:
      key = (protocol, r["model"])
      if r is best:
        r["tied"] = True
        continue
      if not np.isfinite(r["mean"]):
        r["tied"] = False
        continue
      if name not in means_of(best_key) or name not in means_of(key):
        continue  # e.g. masked accuracy of predictions written without the `masked` column
      a, b = means_of(best_key)[name], means_of(key)[name]
      _check_paired(cells_runs[best_key], cells_runs[key])
      lo, hi = interval((a - b) if direction else (b - a))
      r["tied"] = bool(lo <= 0 <= hi)
  return out
