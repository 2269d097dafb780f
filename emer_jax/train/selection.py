"""A sweep's runs: every point trained per (fold, seed), one point chosen per test fold on
validation only, and only that point's runs tested, once.

The selection rule: for each test fold, the point with the best mean validation score over the
seeds (`run_eval.selection_score` of each run's validation-best step; ties go to the first
point). Writes `W/sweep.json` ({points, runs: [{fold, seed, point, val_score, selected_step}],
selected: {fold: point}}), `W/sweep.md` and `W/sweep.csv` (points × folds, the selected point
marked) and `W/plots/sweep.png` (validation score against each swept key, a line per fold).
"""

import csv
import io
import os

import jax
import numpy as np

from emer_jax import logs
from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.train import run_loop
from emer_jax.train import runs as runs_lib


def train_sweep(configs, points, workdir, data, size, engine_for) -> tuple[list[dict], dict]:
  """(the selected runs' results in `run_keys` order, {fold: selected point}); trains every
  run not trained yet, tests the selected runs not tested yet, writes the sweep's files."""
  base = configs[0]
  keys = runs_lib.run_keys(base, len(points))
  trained = run_loop.train_runs(
    configs, workdir, data, size, engine_for, keys, test=False, points=points
  )
  selected = select(base.folds, base.seeds, trained, len(points))
  for fold, point in selected.items():
    logs.phase(f"fold {fold}: selected point {point} ({sweep_lib.label(points[point])})")
  chosen = [(fold, seed, selected[fold]) for seed in base.seeds for fold in base.folds]
  tested = run_loop.train_runs(configs, workdir, data, size, engine_for, chosen, points=points)
  record = {
    "points": points,
    "runs": [
      {k: trained[key][k] for k in ("fold", "seed", "point", "val_score", "selected_step")}
      for key in keys
    ],
    "selected": {str(fold): point for fold, point in selected.items()},
  }
  write_sweep(workdir, record)
  return [tested[key] for key in chosen], record["selected"]


def mean_scores(folds, seeds, trained: dict, num_points: int) -> dict:
  """{fold: [mean validation score over seeds, per point]} (None where a run has none)."""
  out = {}
  for fold in folds:
    out[fold] = []
    for point in range(num_points):
      scores = [trained[(fold, seed, point)]["val_score"] for seed in seeds]
      out[fold].append(None if None in scores else float(np.mean(scores)))
  return out


def select(folds, seeds, trained: dict, num_points: int) -> dict:
  """{fold: the point with the best mean validation score over seeds (ties: the first)}."""
  selected = {}
  for fold, scores in mean_scores(folds, seeds, trained, num_points).items():
    valued = [-np.inf if s is None or np.isnan(s) else s for s in scores]
    selected[fold] = int(np.argmax(valued))
  return selected


def write_sweep(out_dir, record: dict) -> None:
  """sweep.json first, then sweep.md, sweep.csv and plots/sweep.png."""
  workdir_lib.write_json(workdir_lib.sweep_path(out_dir), record, "the sweep record")
  if jax.process_index():
    return
  md, table = tables(record)
  with open(workdir_lib.sweep_path(out_dir, "md"), "w") as f:
    f.write(md)
  with open(workdir_lib.sweep_path(out_dir, "csv"), "w") as f:
    f.write(table)
  plot_sweep(record, workdir_lib.sweep_plot_path(out_dir))


def _folds_seeds(record) -> tuple[list, list]:
  folds = list(dict.fromkeys(run["fold"] for run in record["runs"]))
  seeds = list(dict.fromkeys(run["seed"] for run in record["runs"]))
  return folds, seeds


def _scores(record) -> dict:
  folds, seeds = _folds_seeds(record)
  trained = {(r["fold"], r["seed"], r["point"]): r for r in record["runs"]}
  return mean_scores(folds, seeds, trained, len(record["points"]))


def tables(record: dict) -> tuple[str, str]:
  """(Markdown, CSV): a row per point (its values), a column per test fold holding the mean
  validation score over seeds; the point selected for a fold is marked (bold, `selected`)."""
  scores, keys = _scores(record), _swept_keys(record["points"])
  folds = list(scores)
  selected = {int(f): p for f, p in record["selected"].items()}
  header = ["point", *keys, *(f"fold {f}" for f in folds)]
  lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
  rows = io.StringIO()
  writer = csv.writer(rows, lineterminator="\n")
  writer.writerow(["point", *keys, *(f"fold{f}" for f in folds), "selected_for_folds"])
  for p, point in enumerate(record["points"]):
    values = [point.get(k, "") for k in keys]
    cells = []
    for f in folds:
      text = "–" if scores[f][p] is None else f"{scores[f][p]:.4f}"
      cells.append(f"**{text}**" if selected.get(f) == p else text)
    lines.append("| " + " | ".join(map(str, [p, *values, *cells])) + " |")
    chosen = ";".join(str(f) for f in folds if selected.get(f) == p)
    writer.writerow(
      [p, *values, *("" if scores[f][p] is None else scores[f][p] for f in folds), chosen]
    )
  note = (
    "\nMean validation score over seeds (higher is better: the selection metric, negated where "
    "lower is better); **bold**: the point selected for the test fold.\n"
  )
  return "\n".join(lines) + "\n" + note, rows.getvalue()


def _swept_keys(points) -> list[str]:
  return list(dict.fromkeys(k for point in points for k in point))


def plot_sweep(record: dict, path) -> None:
  """Validation score against each swept key, a line per fold (mean over the other keys)."""
  from matplotlib.figure import Figure

  scores, keys = _scores(record), _swept_keys(record["points"])
  fig = Figure(figsize=(4.5 * len(keys), 3.4))
  axes = fig.subplots(1, len(keys), squeeze=False)[0]
  for ax, key in zip(axes, keys, strict=True):
    values = list(dict.fromkeys(repr(p.get(key)) for p in record["points"]))
    numeric = all(isinstance(p.get(key), int | float) for p in record["points"])
    for fold, fold_scores in scores.items():
      ys = []
      for value in values:
        got = [
          s
          for p, s in zip(record["points"], fold_scores, strict=True)
          if repr(p.get(key)) == value and s is not None
        ]
        ys.append(np.mean(got) if got else np.nan)
      xs = [float(v) for v in values] if numeric else range(len(values))
      ax.plot(xs, ys, marker="o", label=f"fold {fold}")
    if numeric and all(float(v) > 0 for v in values):
      if max(float(v) for v in values) >= 10 * min(float(v) for v in values):
        ax.set_xscale("log")  # e.g. learning rates
    if not numeric:
      ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(key)
    ax.set_ylabel("validation score (mean over seeds)")
    ax.legend(fontsize="small")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=110)
