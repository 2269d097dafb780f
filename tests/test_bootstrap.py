"""Bootstrap intervals of pooled metrics and the paired test behind the suite's marks."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from emer_jax.evaluation import bootstrap, tables
from emer_jax.evaluation.metrics import classification_metrics, regression_metrics
from emer_jax.evaluation.predictions import write_predictions


def _frame(n, accuracy, seed=0, ids=None):
  """Predictions of er_emotion (7 classes) right on about `accuracy` of n samples, and of
  er_valence with noise shrinking as accuracy grows."""
  rng = np.random.default_rng(seed)
  truth = rng.integers(0, 7, n)
  pred = np.where(rng.random(n) < accuracy, truth, (truth + rng.integers(1, 7, n)) % 7)
  valence = rng.normal(size=n)
  return pd.DataFrame(
    {
      "sample_id": ids if ids is not None else [f"s{i}" for i in range(n)],
      "er_emotion": truth,
      "pred_er_emotion": pred,
      "er_valence": valence,
      "pred_er_valence": valence + rng.normal(scale=1.5 - accuracy, size=n),
    }
  )


def test_intervals_are_seeded_contain_the_estimate_and_shrink_with_more_samples():
  runs = [(1, _frame(120, 0.6, seed=1)), (2, _frame(120, 0.6, seed=2))]
  first, again = bootstrap.intervals(runs), bootstrap.intervals(runs)
  assert first == again
  assert bootstrap.intervals(runs, seed=1) != first
  for name, (lo, hi) in first["ci95"].items():
    target, metric = name.split("/")
    point = np.mean(
      [
        (classification_metrics if target == "er_emotion" else regression_metrics)(
          *((f[target], f["pred_" + target]) + ((7,) if target == "er_emotion" else ()))
        )[metric]
        for _, f in runs
      ]
    )
    assert lo < point < hi, name
  small = bootstrap.intervals([(1, _frame(50, 0.6))])["ci95"]
  large = bootstrap.intervals([(1, _frame(800, 0.6))])["ci95"]
  for name in small:
    assert np.diff(large[name]) < 0.6 * np.diff(small[name]), name


def test_intervals_match_a_direct_computation_and_sklearn():
  runs = [(3, _frame(9, 0.5, seed=4)), (5, _frame(6, 0.5, seed=5))]
  num = 30
  found = bootstrap.intervals(runs, seed=7, num=num)
  direct = {"war": [], "f1_weighted": [], "uar": [], "mae": [], "ccc": []}
  draws = {
    fold: np.random.default_rng([7, fold]).integers(0, len(f), (num, len(f))) for fold, f in runs
  }
  for b in range(num):
    per_run = {k: [] for k in direct}
    for fold, frame in runs:
      rows = frame.iloc[draws[fold][b]]
      truth, pred = rows["er_emotion"], rows["pred_er_emotion"]
      per_run["war"].append(sk.accuracy_score(truth, pred))
      labels = np.unique(truth)
      per_run["uar"].append(sk.recall_score(truth, pred, labels=labels, average="macro"))
      per_run["f1_weighted"].append(
        sk.f1_score(truth, pred, labels=labels, average="weighted", zero_division=0)
      )
      per_run["mae"].append(sk.mean_absolute_error(rows["er_valence"], rows["pred_er_valence"]))
      per_run["ccc"].append(regression_metrics(rows["er_valence"], rows["pred_er_valence"])["ccc"])
    for k in direct:
      direct[k].append(np.mean(per_run[k]))
  for metric, values in direct.items():
    target = "er_valence" if metric in ("mae", "ccc") else "er_emotion"
    expected = np.percentile(values, [2.5, 97.5])
    np.testing.assert_allclose(found["ci95"][f"{target}/{metric}"], expected, rtol=1e-9)


def test_masked_and_unmasked_intervals_match_a_direct_computation():
  """With a `masked` column, war/uar on the masked and on the other drawn samples, and mae."""
  runs = []
  for fold, seed in ((3, 4), (5, 5)):
    frame = _frame(12, 0.5, seed=seed)
    frame["masked"] = np.random.default_rng(seed).random(12) < 0.4
    runs.append((fold, frame))
  num = 40
  found = bootstrap.intervals(runs, seed=7, num=num)["ci95"]
  draws = {
    fold: np.random.default_rng([7, fold]).integers(0, len(f), (num, len(f))) for fold, f in runs
  }
  for subset in ("masked", "unmasked"):
    direct = {"war": [], "uar": [], "mae": []}
    for b in range(num):
      per_run = {k: [] for k in direct}
      for fold, frame in runs:
        rows = frame.iloc[draws[fold][b]]
        rows = rows[rows["masked"] == (subset == "masked")]
        if not len(rows):
          per_run["war"].append(np.nan), per_run["uar"].append(np.nan)
          per_run["mae"].append(np.nan)
          continue
        truth, pred = rows["er_emotion"], rows["pred_er_emotion"]
        per_run["war"].append(sk.accuracy_score(truth, pred))
        labels = np.unique(truth)
        per_run["uar"].append(sk.recall_score(truth, pred, labels=labels, average="macro"))
        per_run["mae"].append(sk.mean_absolute_error(rows["er_valence"], rows["pred_er_valence"]))
      for k in direct:
        direct[k].append(np.mean(per_run[k]))
    for metric, values in direct.items():
      target = "er_valence" if metric == "mae" else "er_emotion"
      values = np.asarray(values)
      expected = np.percentile(values[np.isfinite(values)], [2.5, 97.5])
      np.testing.assert_allclose(found[f"{target}/{metric}_{subset}"], expected, rtol=1e-9)
  assert "er_emotion/f1_weighted_masked" not in found


def _cell(path, frames, fold_ids):
  """A finished cell: predictions CSVs and a results.json naming its runs."""
  runs = []
  for (fold, seed), frame in zip(fold_ids, frames, strict=True):
    write_predictions(
      path,
      fold,
      seed,
      sample_id=frame["sample_id"],
      subject_id=frame["sample_id"],
      y_true={"er_emotion": frame["er_emotion"]},
      y_pred={"er_emotion": frame["pred_er_emotion"]},
    )
    runs.append({"fold": fold, "seed": seed})
  (path / "results.json").write_text(json.dumps({"runs": runs}))
  return path


def _record(model, war):
  return {"model": model, "protocol": "er7", "metric": "er_emotion/war", "mean": war, "std": 0.01}


def test_marks_models_identical_by_design_and_not_a_clearly_worse_one(tmp_path):
  folds = [(1, 0), (2, 0)]
  good = [_frame(150, 0.8, seed=1), _frame(150, 0.8, seed=2)]
  # The same predictions, rows in another order: the test pairs samples by id.
  same = [f.sample(frac=1.0, random_state=0) for f in good]
  worse = [
    f.assign(pred_er_emotion=_frame(150, 0.4, seed=s)["pred_er_emotion"])
    for s, f in enumerate(good, 1)
  ]
  cells = {
    ("er7", m): _cell(tmp_path / m, frames, folds)
    for m, frames in (("good", good), ("same", same), ("worse", worse))
  }
  records = [_record("good", 0.8), _record("same", 0.8), _record("worse", 0.42)]
  marked = bootstrap.mark_ties(records, cells)
  assert [r["tied"] for r in marked] == [True, True, False]
  best = bootstrap.read_runs(cells[("er7", "good")], [{"fold": f, "seed": s} for f, s in folds])
  other = bootstrap.read_runs(cells[("er7", "same")], [{"fold": f, "seed": s} for f, s in folds])
  assert bootstrap.paired_difference(best, other, "er_emotion/war", True) == [0.0, 0.0]

  md = tables.comparison_markdown(marked)
  assert "**0.800 ± 0.010**" in md.splitlines()[3] and "**" not in md.splitlines()[4]
  # Without verdicts, only the best displayed mean is bold.
  plain = tables.comparison_markdown([_record("a", 0.8), _record("b", 0.79)])
  assert "**" not in plain.splitlines()[3]
  paths = tables.write_comparison(marked, tmp_path / "table")
  assert tables.TIES_NOTE in paths["md"].read_text()

  other_ids = [_frame(150, 0.8, seed=1, ids=[f"x{i}" for i in range(150)])] * 2
  cells[("er7", "elsewhere")] = _cell(tmp_path / "elsewhere", other_ids, folds)
  with pytest.raises(ValueError, match="test samples differ"):
    bootstrap.mark_ties(records + [_record("elsewhere", 0.79)], cells)


def test_results_carry_intervals_into_json_and_tables(tmp_path):
  folds = [(1, 0), (1, 1)]
  cell = _cell(tmp_path, [_frame(60, 0.7, seed=1), _frame(60, 0.5, seed=2)], folds)
  results = {"runs": [{"fold": f, "seed": s, "metrics": {}} for f, s in folds]}
  results |= {"mean": {"er_emotion/war": 0.6}, "std": {"er_emotion/war": 0.1}}
  out = bootstrap.results_intervals(cell, results)
  assert out["bootstrap"]["resamples"] == 1000 and set(out["ci95"]) == {
    f"er_emotion/{m}" for m in bootstrap.METRICS["classification"]
  }
  lo, hi = out["ci95"]["er_emotion/war"]
  assert lo < 0.6 < hi and all(len(run["ci95"]) == 4 for run in out["runs"])
  md = tables.results_markdown(out).splitlines()
  assert md[-1].startswith(f"| 95 % CI |  | [{lo:.3f}, {hi:.3f}] |")
