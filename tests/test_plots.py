"""Plots are written as valid PNG images, with the labels and marks a reader needs."""

import json

import numpy as np
import pytest
from matplotlib import image

from emer_jax.evaluation.metrics import classification_metrics
from emer_jax.evaluation.plots import (
  learning_curves_figure,
  plot_confusion,
  plot_learning_curves,
  plot_per_class_recall,
  plot_regression_scatter,
  read_metrics_jsonl,
  recall_figure,
)
from emer_jax.protocols import EMOTIONS


def _assert_png(path):
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  pixels = image.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
  assert pixels.std() > 0  # not blank


def test_classification_plots(tmp_path):
  rng = np.random.default_rng(0)
  y_true = rng.integers(0, 6, 80)  # 'neutral' absent from the truth
  y_pred = np.where(rng.random(80) < 0.6, y_true, rng.integers(0, 7, 80))
  m = classification_metrics(y_true, y_pred, 7)
  _assert_png(plot_confusion(m["confusion"], EMOTIONS, tmp_path / "confusion.png", title="er7"))
  _assert_png(plot_per_class_recall(m["per_class_recall"], EMOTIONS, tmp_path / "recall.png"))


def test_regression_scatter(tmp_path):
  rng = np.random.default_rng(1)
  y = rng.normal(size=100)
  _assert_png(
    plot_regression_scatter(y, y + rng.normal(0, 0.3, 100), tmp_path / "v.png", "valence")
  )
  _assert_png(plot_regression_scatter(y, np.zeros(100), tmp_path / "const.png"))


def test_learning_curves(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = []
  for step in range(0, 200, 10):
    record = {"step": step, "train/loss": 2 / (1 + step), "lr": 1e-4, "note": "x"}
    if step % 50 == 0:
      record |= {"val/loss": 2.5 / (1 + step), "val/war": step / 200, "val/er_valence/mae": 0.3}
    lines.append(json.dumps(record))
  path.write_text("\n".join(lines) + "\n\n")
  series = read_metrics_jsonl(path)
  assert sorted(series) == ["lr", "train/loss", "val/er_valence/mae", "val/loss", "val/war"]
  steps, values = series["val/war"]
  np.testing.assert_array_equal(steps, [0, 50, 100, 150])
  np.testing.assert_allclose(values, [0, 0.25, 0.5, 0.75])
  _assert_png(plot_learning_curves(path, tmp_path / "curves.png"))


def test_learning_curves_of_one_run_among_several(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [
    {"step": step, "fold": fold, "seed": 0, "train/loss": fold + step / 10}
    for fold in (1, 2)
    for step in range(5)
  ]
  path.write_text("".join(json.dumps(r) + "\n" for r in lines))
  with pytest.raises(ValueError, match=r"several runs .*pass fold= and seed="):
    read_metrics_jsonl(path)
  series = read_metrics_jsonl(path, fold=2, seed=0)
  assert sorted(series) == ["train/loss"]  # fold and seed are tags, not series
  np.testing.assert_allclose(series["train/loss"][1], [2.0, 2.1, 2.2, 2.3, 2.4])
  assert read_metrics_jsonl(path, fold=3, seed=0) == {}
  with pytest.raises(ValueError, match="no numeric series of fold 3 seed 0"):
    plot_learning_curves(path, tmp_path / "none.png", fold=3, seed=0)
  _assert_png(plot_learning_curves(path, tmp_path / "fold1.png", fold=1, seed=0))


def test_learning_curves_are_labelled_and_mark_the_selected_step(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = []
  for step in range(1, 41):
    record = {
      "step": step,
      "train/loss/task": 2 / step,
      "train/loss/task/er_emotion": 2 / step,  # the only head: a repeat, no panel
      "train/grl_lambda": 1.0,  # constant: no panel
      "perf/steps_per_s": 3.0 + step % 3,  # throughput: no panel
    }
    if step % 10 == 0:
      record |= {"val/loss/task": 2.5 / step, "val/er_emotion/war": step / 40}
      record |= {"val/loss/task/er_emotion": 2.5 / step}
    lines.append(json.dumps(record))
  path.write_text("\n".join(lines) + "\n")
  fig = learning_curves_figure(path, selected_step=20)
  axes = [ax for ax in fig.axes if ax.axison]
  assert sorted(ax.get_title() for ax in axes) == ["train/val: loss/task", "val: er_emotion/war"]
  for ax in axes:
    assert ax.get_xlabel() == "step" and ax.get_ylabel() in ("loss", "war")
    marks = [line for line in ax.get_lines() if line.get_label() == "selected step 20"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [20, 20]
  (loss,) = [ax for ax in axes if ax.get_title().endswith("loss/task")]
  assert [t.get_text() for t in loss.get_legend().get_texts()] == [
    "train",
    "val",
    "selected step 20",
  ]


def test_recall_plot_shows_counts_and_chance(tmp_path):
  support = [5, 1, 0, 3, 2, 4, 6]
  recall = [0.6, 1.0, float("nan"), 0.0, 0.5, 0.25, 0.5]
  fig = recall_figure(recall, EMOTIONS, support=support, title="er_emotion")
  (ax,) = fig.axes
  labels = [t.get_text() for t in ax.get_xticklabels()]
  assert labels[0] == "happiness\n(n=5)" and labels[1] == "sadness\n(n=1)"
  (chance,) = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
  assert chance.get_ydata()[0] == pytest.approx(1 / 7)
  assert "chance 1/7" in [t.get_text() for t in ax.get_legend().get_texts()]
  assert ax.get_ylabel() == "recall" and ax.get_xlabel()
  assert "n/a" in [t.get_text() for t in ax.texts]


def test_degradation_has_a_panel_per_stream_distinct_colours_and_the_legend_outside(tmp_path):
  from emer_jax.evaluation import corruptions
  from emer_jax.evaluation.plots import degradation_figure, plot_degradation

  metrics = ["er_emotion/war", "er_emotion/uar"]
  rows = [
    {"corruption": "none", "modality": "", "severity": 0, "metrics": dict.fromkeys(metrics, 0.6)}
  ]
  chosen = corruptions.for_model(("face", "eye", "gaze"), None)
  for c in chosen:
    for k, _ in enumerate(c.amounts, 1):
      rows.append(
        {
          "corruption": c.name,
          "modality": c.modality,
          "severity": k,
          "metrics": dict.fromkeys(metrics, 0.6 - 0.05 * k),
        }
      )
  baselines = dict.fromkeys(metrics, 0.2)
  fig = degradation_figure(rows, metrics, baselines, title="er7")
  streams = list(dict.fromkeys(c.modality for c in chosen))
  assert len(streams) == 4 and len(fig.axes) == len(metrics) * len(streams)
  assert [ax.get_title() for ax in fig.axes[: len(streams)]] == [
    f"{s}: {metrics[0]}" for s in streams
  ]
  colour_of = {}
  for ax in fig.axes:
    for line in ax.get_lines()[:-1]:  # the last: the dashed most-frequent-class level
      colour_of.setdefault(line.get_color(), set()).add(tuple(line.get_xydata()[-1]))
  names = {c.name for c in chosen}
  (legend,) = fig.legends
  labels = [t.get_text() for t in legend.get_texts()]
  assert set(labels) == names | {"most frequent class"}
  legend_colours = [h.get_color() for h in legend.legend_handles]
  assert len(set(legend_colours)) == len(labels)  # every series its own colour
  from matplotlib.backends.backend_agg import FigureCanvasAgg

  FigureCanvasAgg(fig).draw()  # lays the figure out as saving does
  box = legend.get_window_extent()
  for ax in fig.axes:  # beside the panels, never over the data
    assert not box.overlaps(ax.get_window_extent())
  _assert_png(plot_degradation(rows, metrics, tmp_path / "d.png", baselines))
