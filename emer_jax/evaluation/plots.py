"""PNG plots of evaluation results and training curves.

Figures are built with `matplotlib.figure.Figure` and written by the Agg renderer, never through
pyplot, so no display or global backend state is involved. Each `plot_*` function returns the
path written; the `*_figure` functions behind them return the figure, for notebooks and tests.
"""

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from emer_jax.evaluation.metrics import regression_metrics


def _save(fig: Figure, path) -> Path:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, format="png", dpi=120)
  return path


def _heatmap(ax, matrix, class_names, fmt, title):
  image = ax.imshow(matrix, cmap="Blues", vmin=0)
  ticks = np.arange(len(class_names))
  ax.set_xticks(ticks, class_names, rotation=45, ha="right")
  ax.set_yticks(ticks, class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title)
  finite = matrix[np.isfinite(matrix)]
  threshold = finite.max() / 2 if finite.size else 0
  for (i, j), value in np.ndenumerate(matrix):
    text = "–" if np.isnan(value) else format(value, fmt)
    color = "white" if np.isfinite(value) and value > threshold else "black"
    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
  return image


def plot_confusion(confusion, class_names: Sequence[str], path, title: str = "") -> Path:
  """Counts and row-normalised (recall) confusion matrices side by side; rows are the truth.

  Rows of classes absent from the truth show '–' in the normalised panel.
  """
  counts = np.asarray(confusion, dtype=np.int64)
  support = counts.sum(1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    normalised = np.where(support > 0, counts / support, np.nan)
  size = 2.5 + 0.55 * len(class_names)
  fig = Figure(figsize=(2 * size + 1.5, size), layout="constrained")
  left, right = fig.subplots(1, 2)
  fig.colorbar(_heatmap(left, counts, class_names, "d", "counts"), ax=left, shrink=0.8)
  image = _heatmap(right, normalised, class_names, ".2f", "row-normalised")
  image.set_clim(0, 1)
  fig.colorbar(image, ax=right, shrink=0.8)
  if title:
    fig.suptitle(title)
  return _save(fig, path)


def recall_figure(recall, class_names: Sequence[str], support=None, title: str = "") -> Figure:
  """Bar per class, its test-sample count under its name, and the chance line 1/C.

  Classes absent from the truth (NaN recall) are marked 'n/a'.
  """
  recall = np.asarray(recall, dtype=np.float64)
  fig = Figure(figsize=(2 + 0.8 * len(class_names), 3.8), layout="constrained")
  ax = fig.subplots()
  x = np.arange(len(class_names))
  ax.bar(x, np.nan_to_num(recall), color="tab:blue")
  for i, value in enumerate(recall):
    label = "n/a" if np.isnan(value) else f"{value:.2f}"
    ax.text(i, (0 if np.isnan(value) else value) + 0.02, label, ha="center", fontsize=8)
  names = list(class_names)
  if support is not None:
    names = [f"{name}\n(n={int(n)})" for name, n in zip(class_names, support, strict=True)]
  ax.set_xticks(x, names, rotation=45, ha="right")
  chance = 1 / len(class_names)
  ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance 1/{len(class_names)}")
  ax.legend(loc="upper right", fontsize=8)
  ax.set_ylim(0, 1.15)
  ax.set_xlabel("true class (test samples)" if support is not None else "true class")
  ax.set_ylabel("recall")
  ax.set_title(title or "per-class recall")
  return fig


def plot_per_class_recall(
  recall, class_names: Sequence[str], path, title: str = "", support=None
) -> Path:
  """`recall_figure` as a PNG; `support` is the number of test samples per class."""
  return _save(recall_figure(recall, class_names, support, title), path)


def plot_regression_scatter(y_true, y_pred, path, title: str = "") -> Path:
  """Truth against prediction with the identity line; PCC, CCC and MAE in the title."""
  y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
  y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
  m = regression_metrics(y_true, y_pred)
  fig = Figure(figsize=(4.5, 4.5), layout="constrained")
  ax = fig.subplots()
  ax.scatter(y_true, y_pred, s=10, alpha=0.6)
  both = np.concatenate([y_true, y_pred])
  low, high = (both.min(), both.max()) if both.size else (0.0, 1.0)
  pad = 0.05 * (high - low or 1.0)
  ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=1, label="y = x")
  ax.set_xlim(low - pad, high + pad)
  ax.set_ylim(low - pad, high + pad)
  ax.set_aspect("equal")
  ax.set_xlabel("true")
  ax.set_ylabel("predicted")
  ax.legend(loc="upper left")
  stats = f"PCC {m['pcc']:.3f}  CCC {m['ccc']:.3f}  MAE {m['mae']:.3f}"
  ax.set_title(f"{title}\n{stats}" if title else stats, fontsize=10)
  return _save(fig, path)


def read_metrics_jsonl(
  path, fold: int | None = None, seed: int | None = None, point: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Numeric series of one run in a metrics.jsonl file: {key: (steps, values)}, in file order.

  Each line is a JSON object with `step`, and `fold` and `seed` when the trainer wrote it; a key
  need not appear on every line. Non-numeric values (strings, lists, booleans) are skipped. A file
  that holds several runs needs `fold` and `seed` (and a sweep's `point`) to pick one; a run
  without lines gives {}.
  """
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  runs = sorted({(r.get("fold"), r.get("seed"), r.get("point")) for r in records}, key=str)
  if fold is not None or seed is not None:
    chosen = (fold, seed, point)
    records = [r for r in records if (r.get("fold"), r.get("seed"), r.get("point")) == chosen]
  elif len(runs) > 1:
    raise ValueError(f"{path} holds several runs {runs} (fold, seed, point); pass fold= and seed=.")
  series: dict[str, tuple[list, list]] = {}
  for record in records:
    for key, value in record.items():
      if key in ("step", "fold", "seed", "point"):
        continue
      if isinstance(value, bool) or not isinstance(value, int | float):
        continue
      steps, values = series.setdefault(key, ([], []))
      steps.append(record["step"])
      values.append(float(value))
  return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in series.items()}


def _group(key: str) -> str:
  """'train/loss' and 'val/loss' share the panel 'loss'; keys without a '/' get their own."""
  return key.split("/", 1)[1] if "/" in key else key


def _split(key: str) -> str:
  return key.split("/", 1)[0] if "/" in key else ""


# Series that tell nothing about learning: speed (perf/…) is read from the progress bar.
_SKIPPED_PREFIXES = ("perf/",)


def _informative(series: dict) -> dict:
  """Drops throughput, series that never change (a constant GRL λ or learning rate), and
  repeats of an earlier series (with one head, `loss/task/<head>` is `loss/task`)."""
  kept = {}
  for key, (steps, values) in series.items():
    if key.startswith(_SKIPPED_PREFIXES) or np.ptp(values) == 0:
      continue
    repeat = any(
      _split(k) == _split(key) and np.array_equal(s, steps) and np.array_equal(v, values)
      for k, (s, v) in kept.items()
    )
    if not repeat:
      kept[key] = (steps, values)
  return kept


def learning_curves_figure(
  metrics_jsonl, fold=None, seed=None, selected_step: int | None = None, ncols: int = 3, point=None
) -> Figure:
  """Every informative numeric series of one run (`read_metrics_jsonl`) against step, one panel
  per metric with its splits overlaid; the selected checkpoint's step as a vertical line.

  Keys are grouped on what follows the first '/', so `train/loss` and `val/loss` share a panel
  titled 'train/val: loss', as do `train/er_valence/mae` and `val/er_valence/mae`. Throughput
  (`perf/…`) and series that never change are left out.
  """
  series = read_metrics_jsonl(metrics_jsonl, fold, seed, point)
  if not series:
    raise ValueError(f"{metrics_jsonl} has no numeric series of fold {fold} seed {seed}.")
  series = _informative(series) or series
  groups: dict[str, list[str]] = {}
  for key in series:
    groups.setdefault(_group(key), []).append(key)
  ncols = max(1, min(ncols, len(groups)))
  nrows = max(1, math.ceil(len(groups) / ncols))
  fig = Figure(figsize=(4 * ncols, 3 * nrows), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
  for ax, (name, keys) in zip(axes, groups.items(), strict=False):
    for key in keys:
      steps, values = series[key]
      ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=_split(key) or key)
    if selected_step is not None:
      ax.axvline(selected_step, color="gray", ls=":", lw=1, label=f"selected step {selected_step}")
    splits = "/".join(dict.fromkeys(_split(k) for k in keys if _split(k)))
    ax.set_title(f"{splits}: {name}" if splits else name, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" if name.startswith("loss") else name.rsplit("/", 1)[-1])
    ax.legend(fontsize=7)
  for ax in axes[len(groups) :]:
    ax.set_axis_off()
  return fig


def plot_learning_curves(
  metrics_jsonl,
  path,
  fold: int | None = None,
  seed: int | None = None,
  ncols: int = 3,
  selected_step: int | None = None,
  point: int | None = None,
) -> Path:
  """`learning_curves_figure` as a PNG."""
  figure = learning_curves_figure(metrics_jsonl, fold, seed, selected_step, ncols, point)
  return _save(figure, path)


def degradation_figure(rows, metrics: Sequence[str], baselines=None, title: str = "") -> Figure:
  """Robustness report rows (`emer_jax.evaluation.robustness`): each metric (a row of panels)
  against severity, one panel per corrupted stream ('face', 'eye+gaze', …), one line per
  corruption, each starting from the clean value at severity 0. A corruption keeps its colour in
  every panel; the one legend sits right of the panels.

  `baselines` maps metric names to a level drawn as a dashed line (e.g. the accuracy of
  always predicting the most frequent class).
  """
  clean = next(r for r in rows if r["corruption"] == "none")
  streams: dict[str, dict[str, list]] = {}  # stream -> corruption -> rows
  for row in rows:
    if row["corruption"] != "none":
      streams.setdefault(row["modality"], {}).setdefault(row["corruption"], []).append(row)
  names = list(dict.fromkeys(c for lines in streams.values() for c in lines))
  palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
  colours = {name: palette[i % len(palette)] for i, name in enumerate(names)}
  ncols, nrows = max(1, len(streams)), max(1, len(metrics))
  fig = Figure(figsize=(3.4 * ncols + 2, 2.8 * nrows), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False, sharey="row")
  handles = {}
  for r, metric in enumerate(metrics):
    for c, (stream, lines) in enumerate(streams.items()):
      ax = axes[r, c]
      for name, points in lines.items():
        x = [0] + [p["severity"] for p in points]
        y = [clean["metrics"][metric]] + [p["metrics"][metric] for p in points]
        (handles[name],) = ax.plot(x, y, marker="o", markersize=3, color=colours[name])
      if baselines and metric in baselines:
        handles["most frequent class"] = ax.axhline(baselines[metric], color="k", ls="--", lw=1)
      ax.set_title(f"{stream}: {metric}", fontsize=9)
      ax.set_xlabel("severity (0 = clean)")
      if c == 0:
        ax.set_ylabel(metric.rsplit("/", 1)[-1])
  if handles:
    handles["most frequent class"] = handles.pop("most frequent class", None)  # last
    shown = {k: h for k, h in handles.items() if h is not None}
    fig.legend(shown.values(), shown.keys(), loc="outside right upper", fontsize=8)
  if title:
    fig.suptitle(title)
  return fig


def plot_degradation(rows, metrics: Sequence[str], path, baselines=None, title: str = "") -> Path:
  """Writes `degradation_figure` to `path`."""
  return _save(degradation_figure(rows, metrics, baselines, title), path)
