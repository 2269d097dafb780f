"""Pooled and reference-style metrics against scikit-learn, scipy and hand-computed cases."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from emer_jax.evaluation.metrics import (
  classification_metrics,
  confusion_matrix,
  flatten_scalars,
  masked_metrics,
  reference_style_metrics,
  regression_metrics,
  summarize,
  target_metrics,
)


def _sk_classification(y_true, y_pred, num_classes):
  present = np.unique(y_true)
  return {
    "war": skm.accuracy_score(y_true, y_pred),
    "uar": skm.recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
    "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
    "f1_macro": skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
    "confusion": skm.confusion_matrix(y_true, y_pred, labels=range(num_classes)),
  }


@pytest.mark.parametrize("case", range(20))
def test_classification_matches_sklearn(case):
  rng = np.random.default_rng(case)
  num_classes = int(rng.integers(2, 8))
  n = int(rng.integers(1, 200))
  # Some cases draw from a subset of classes so that classes are absent from truth or predictions.
  y_true = rng.integers(0, max(1, num_classes - case % 3), n)
  y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, num_classes, n))
  got = classification_metrics(y_true, y_pred, num_classes)
  want = _sk_classification(y_true, y_pred, num_classes)
  for key in ("war", "uar", "f1_weighted", "f1_macro"):
    assert got[key] == pytest.approx(want[key], abs=1e-12), key
  np.testing.assert_array_equal(got["confusion"], want["confusion"])
  recall = np.array(got["per_class_recall"])
  present = np.isin(np.arange(num_classes), y_true)
  assert np.isnan(recall[~present]).all()
  sk_recall = skm.recall_score(
    y_true, y_pred, labels=np.flatnonzero(present), average=None, zero_division=0
  )
  np.testing.assert_allclose(recall[present], sk_recall)


def test_classification_hand_computed_with_absent_class():
  # Classes 0, 1, 2 in truth; class 3 absent from truth but predicted once.
  y_true = [0, 0, 0, 1, 1, 2]
  y_pred = [0, 0, 3, 1, 0, 2]
  m = classification_metrics(y_true, y_pred, num_classes=4)
  assert m["war"] == pytest.approx(4 / 6)
  assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
  np.testing.assert_allclose(m["per_class_recall"][:3], [2 / 3, 1 / 2, 1])
  assert np.isnan(m["per_class_recall"][3])
  f1 = [2 * 2 / (2 * 2 + 1 + 1), 2 * 1 / (2 + 0 + 1), 1.0]  # 2TP / (2TP + FP + FN)
  assert m["f1_macro"] == pytest.approx(np.mean(f1))
  assert m["f1_weighted"] == pytest.approx((3 * f1[0] + 2 * f1[1] + f1[2]) / 6)
  assert m["confusion"] == [[2, 0, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_single_class_fold():
  m = classification_metrics([2, 2, 2, 2], [2, 1, 2, 2], num_classes=3)
  assert m["war"] == m["uar"] == pytest.approx(0.75)
  assert m["f1_macro"] == m["f1_weighted"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
  assert np.isnan(m["per_class_recall"][:2]).all()


def test_classification_accepts_scores_and_checks_range():
  scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
  assert classification_metrics([1, 0, 0], scores, 2)["war"] == pytest.approx(2 / 3)
  with pytest.raises(ValueError):
    classification_metrics([0, 3], [0, 1], 3)
  with pytest.raises(ValueError):
    confusion_matrix([0, 1], [0], 2)


@pytest.mark.parametrize("case", range(10))
def test_regression_matches_sklearn_and_scipy(case):
  rng = np.random.default_rng(100 + case)
  n = int(rng.integers(2, 300))
  y_true = rng.normal(size=n)
  y_pred = 0.7 * y_true + rng.normal(0.3, 0.5, size=n)
  m = regression_metrics(y_true, y_pred[:, None])
  assert m["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
  assert m["mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred))
  assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
  assert m["pcc"] == pytest.approx(stats.pearsonr(y_true, y_pred)[0])
  assert m["pcc"] == pytest.approx(np.corrcoef(y_true, y_pred)[0, 1])
  ccc = (
    2
    * np.cov(y_true, y_pred, bias=True)[0, 1]
    / (y_true.var() + y_pred.var() + (y_true.mean() - y_pred.mean()) ** 2)
  )
  assert m["ccc"] == pytest.approx(ccc)


def test_regression_perfect_and_constant_inputs():
  y = np.array([0.1, -0.4, 0.9, 0.3])
  perfect = regression_metrics(y, y)
  assert perfect["mae"] == perfect["mse"] == 0
  assert perfect["pcc"] == pytest.approx(1) and perfect["ccc"] == pytest.approx(1)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    constant_pred = regression_metrics(y, np.full(4, 0.1))
    both_equal = regression_metrics(np.full(5, 0.1), np.full(5, 0.1))
    both_differ = regression_metrics(np.full(5, 0.1), np.full(5, 0.3))
  assert constant_pred["mae"] == pytest.approx(np.mean(np.abs(y - 0.1)))
  assert np.isnan(constant_pred["pcc"]) and constant_pred["ccc"] == 0
  assert np.isnan(both_equal["pcc"]) and np.isnan(both_equal["ccc"]) and both_equal["mse"] == 0
  assert np.isnan(both_differ["pcc"]) and both_differ["ccc"] == 0
  assert both_differ["rmse"] == pytest.approx(0.2)


def _sk_reference(y_true, y_pred, kind, batch_size):
  """The authors' evaluation loop, written with the sklearn calls their scripts make."""
  sums, count = {}, 0
  for i in range(0, len(y_true), batch_size):
    t, p = y_true[i : i + batch_size], y_pred[i : i + batch_size]
    if kind == "classification":
      batch = {
        "ref_f1_weighted": skm.f1_score(t, p, average="weighted", zero_division=0),
        "ref_war": skm.recall_score(t, p, average="weighted", zero_division=0),
        "ref_uar": skm.recall_score(t, p, average="macro", zero_division=0),
      }
    else:
      mse = skm.mean_squared_error(t, p)
      batch = {
        "ref_mae": skm.mean_absolute_error(t, p),
        "ref_mse": mse,
        "ref_rmse": np.sqrt(mse),
      }
    sums = {k: sums.get(k, 0.0) + v for k, v in batch.items()}
    count += 1
  return {k: v / count for k, v in sums.items()}


@pytest.mark.parametrize("n", [16, 50, 161])
def test_reference_style_matches_authors_loop(n):
  rng = np.random.default_rng(n)
  y_true = rng.integers(0, 7, n)
  y_pred = np.where(rng.random(n) < 0.4, y_true, rng.integers(0, 7, n))
  got = reference_style_metrics(y_true, y_pred, "classification", num_classes=7)
  assert got == pytest.approx(_sk_reference(y_true, y_pred, "classification", 16))
  v_true, v_pred = rng.normal(size=n), rng.normal(size=n)
  got = reference_style_metrics(v_true, v_pred, "regression", batch_size=16)
  assert got == pytest.approx(_sk_reference(v_true, v_pred, "regression", 16))


def test_reference_style_differs_from_pooled():
  # Batch 1: all correct; batch 2 (short): one sample, wrong. Pooled war 16/17, reference 1/2.
  y_true = np.zeros(17, int)
  y_pred = np.r_[np.zeros(16, int), 1]
  assert reference_style_metrics(y_true, y_pred, "classification")["ref_war"] == 0.5
  assert classification_metrics(y_true, y_pred, 2)["war"] == pytest.approx(16 / 17)
  with pytest.raises(ValueError):
    reference_style_metrics(y_true, y_pred, "ranking")


def test_target_metrics_dispatches_by_target_kind():
  out = target_metrics(
    {"er_emotion": [0, 6, 6], "er_valence": [0.1, 0.2, 0.4]},
    {"er_emotion": [0, 6, 5], "er_valence": [0.1, 0.3, 0.4]},
  )
  assert out["er_emotion"]["war"] == pytest.approx(2 / 3)
  assert len(out["er_emotion"]["confusion"]) == 7
  assert out["er_valence"]["mae"] == pytest.approx(0.1 / 3)


def test_flatten_and_summarize():
  runs = [
    {"er_valence": {"mae": 1.0, "pcc": 0.5}, "ref_mae": 2.0},
    {"er_valence": {"mae": 3.0, "pcc": float("nan")}, "ref_mae": 4.0},
  ]
  assert flatten_scalars({"a": {"b": 1, "c": [1, 2]}, "d": 2.5}) == {"a/b": 1.0, "d": 2.5}
  s = summarize(runs)
  assert s["mean"] == {
    "er_valence/mae": 2.0,
    "er_valence/pcc": pytest.approx(np.nan, nan_ok=True),
    "ref_mae": 3.0,
  }
  assert s["std"]["er_valence/mae"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
  assert np.isnan(s["std"]["er_valence/pcc"])
  assert np.isnan(summarize(runs[:1])["std"]["ref_mae"])
  with pytest.raises(ValueError):
    summarize([])


def test_masked_metrics_match_sklearn_on_each_subset():
  rng = np.random.default_rng(7)
  n = 80
  genuine, displayed = rng.integers(0, 7, n), rng.integers(0, 7, n)
  displayed[:50] = genuine[:50]  # 50 unmasked samples, the rest mostly masked
  scores = rng.normal(size=(n, 7))
  valence, predicted_valence = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
  masked = genuine != displayed
  out = masked_metrics(
    {"er_emotion": genuine, "er_valence": valence},
    {"er_emotion": scores, "er_valence": predicted_valence},
    masked,
  )
  labels = scores.argmax(1)
  for subset, rows in (("masked", masked), ("unmasked", ~masked)):
    present = np.unique(genuine[rows])
    assert out["er_emotion"][f"war_{subset}"] == pytest.approx(
      skm.accuracy_score(genuine[rows], labels[rows])
    )
    assert out["er_emotion"][f"uar_{subset}"] == pytest.approx(
      skm.recall_score(genuine[rows], labels[rows], labels=present, average="macro")
    )
    assert out["er_valence"][f"mae_{subset}"] == pytest.approx(
      skm.mean_absolute_error(valence[rows], predicted_valence[rows])
    )
  assert set(out["er_valence"]) == {"mae_masked", "mae_unmasked"}
  # No masked sample in the fold: only the unmasked subset is reported.
  none = masked_metrics({"er_emotion": genuine}, {"er_emotion": labels}, np.zeros(n, bool))
  assert sorted(none["er_emotion"]) == ["uar_unmasked", "war_unmasked"]
  assert none["er_emotion"]["war_unmasked"] == pytest.approx(skm.accuracy_score(genuine, labels))
