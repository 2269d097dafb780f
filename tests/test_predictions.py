"""Predictions CSV round trip, and results recomputed from it agree with scikit-learn."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from emer_jax.evaluation.metrics import reference_style_metrics, target_metrics
from emer_jax.evaluation.predictions import (
  metrics_from_predictions,
  read_predictions,
  write_predictions,
)
from emer_jax.protocols import EMOTIONS, TARGETS


def _fold(n=60, seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(n, 7))
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  polarity = rng.dirichlet(np.ones(3), size=n)
  return {
    "sample_id": [f"{i:04d}" for i in range(n)],
    "subject_id": [f"{i % 5:03d}" for i in range(n)],
    "y_true": {
      "er_emotion": rng.integers(0, 6, n),
      "er_valence": rng.normal(size=n),
      "fer_polarity": rng.integers(0, 3, n),
    },
    "y_pred": {
      "er_emotion": probs,
      "er_valence": rng.normal(size=(n, 1)),
      "fer_polarity": polarity,
    },
    "probabilities": {"er_emotion": probs, "fer_polarity": polarity},
  }


def test_write_and_read_back(tmp_path):
  fold = _fold()
  path = write_predictions(tmp_path, 2, 1, **fold)
  assert path.name == "predictions_fold2_seed1.csv"
  frame = read_predictions(path)
  assert list(frame.columns) == [
    "sample_id",
    "subject_id",
    "er_emotion",
    "pred_er_emotion",
    "er_valence",
    "pred_er_valence",
    "fer_polarity",
    "pred_fer_polarity",
    *(f"prob_er_emotion_{c}" for c in EMOTIONS),
    *(f"prob_fer_polarity_{c}" for c in TARGETS["fer_polarity"].class_names),
  ]
  assert frame["sample_id"].tolist() == fold["sample_id"]  # leading zeros kept
  np.testing.assert_array_equal(
    frame["pred_er_emotion"], fold["probabilities"]["er_emotion"].argmax(1)
  )
  np.testing.assert_array_equal(frame["er_valence"], fold["y_true"]["er_valence"])
  for target, probs in fold["probabilities"].items():
    columns = [f"prob_{target}_{c}" for c in TARGETS[target].class_names]
    np.testing.assert_array_equal(frame[columns], probs)


def test_results_json_equals_sklearn_on_saved_predictions(tmp_path):
  fold = _fold(seed=3)
  path = write_predictions(tmp_path, 0, 0, **fold)
  # What a run stores in results.json, computed from the in-memory arrays.
  stored = json.loads(json.dumps(target_metrics(fold["y_true"], fold["y_pred"])))
  recomputed = metrics_from_predictions(path)
  np.testing.assert_equal(recomputed, stored)  # exact; NaN recall of absent class 6 included
  frame = read_predictions(path)
  t, p = frame["er_emotion"], frame["pred_er_emotion"]
  present = np.unique(t)
  cls = stored["er_emotion"]
  assert cls["war"] == pytest.approx(skm.accuracy_score(t, p))
  assert cls["uar"] == pytest.approx(skm.recall_score(t, p, labels=present, average="macro"))
  assert cls["f1_weighted"] == pytest.approx(skm.f1_score(t, p, average="weighted"))
  assert cls["f1_macro"] == pytest.approx(skm.f1_score(t, p, labels=present, average="macro"))
  np.testing.assert_array_equal(cls["confusion"], skm.confusion_matrix(t, p, labels=range(7)))
  v, q = frame["er_valence"], frame["pred_er_valence"]
  reg = stored["er_valence"]
  assert reg["mae"] == pytest.approx(skm.mean_absolute_error(v, q))
  assert reg["mse"] == pytest.approx(skm.mean_squared_error(v, q))
  assert reg["pcc"] == pytest.approx(stats.pearsonr(v, q)[0])


def test_write_rejects_bad_shapes(tmp_path):
  fold = _fold()
  with pytest.raises(ValueError):
    write_predictions(tmp_path, 0, 0, **{**fold, "sample_id": fold["sample_id"][:-1]})
  with pytest.raises(ValueError):
    write_predictions(tmp_path, 0, 0, **{**fold, "probabilities": {"er_emotion": np.ones((60, 3))}})


def test_reference_style_from_saved_predictions(tmp_path):
  fold = _fold(n=41)
  path = write_predictions(tmp_path, 0, 0, **fold)
  out = metrics_from_predictions(path, reference_batch_size=16)
  labels = fold["probabilities"]["er_emotion"].argmax(1)
  want = reference_style_metrics(fold["y_true"]["er_emotion"], labels, "classification")
  assert {k: out["er_emotion"][k] for k in want} == want
  assert out["er_valence"]["ref_rmse"] == pytest.approx(
    reference_style_metrics(
      fold["y_true"]["er_valence"], fold["y_pred"]["er_valence"], "regression"
    )["ref_rmse"]
  )
  assert "war" in out["er_emotion"] and "mae" in out["er_valence"]
