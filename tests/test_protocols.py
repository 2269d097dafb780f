"""Protocol configs, a five-fold run's reports checked against scikit-learn, and the suite."""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from emer_jax.config import protocol_config
from emer_jax.evaluation import predictions
from emer_jax.evaluation.metrics import reference_style_metrics
from emer_jax.protocols import PROTOCOLS, TARGETS
from emer_jax.suite import cell_config
from tests.test_train import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--config.total_steps=2", "--config.eval_every_steps=2", "--config.log_every_steps=1"]
# The eye streams alone: no ResNet to compile, which is most of a CPU run's time.
EYES = "--config.model.modalities=('eye','gaze')"


def _python(*args, env=None):
  proc = subprocess.run(
    [sys.executable, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=900,
    env={**os.environ, **(env or {})},
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc.stdout


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_config_files(name):
  config = importlib.import_module(f"configs.protocols.{name}").get_config("small,multitask")
  assert config.protocol == name
  assert config.dataset == "emer/synthetic_small"
  protocol = PROTOCOLS[name]
  views = {t.split("_")[0] for t in config.extra_targets}
  assert views and views.isdisjoint({t.split("_")[0] for t in protocol.targets})
  assert protocol_config(name).dataset == "emer/synthetic"
  assert protocol_config(name).extra_targets == ()


def test_fer_int_is_the_authors_intensity_model():
  config = protocol_config("fer_int")
  assert config.model.variant == "intensity"
  assert (config.loss.alpha, config.loss.beta) == (0.3, 0.1)
  assert PROTOCOLS["fer_int"].auxiliary == ("fer_emotion",)
  with pytest.raises(ValueError, match="bogus"):
    protocol_config("er7", "bogus")


def _sklearn_metrics(frame, target):
  y, p = frame[target].to_numpy(), frame[predictions.PRED_PREFIX + target].to_numpy()
  present = np.unique(y)
  return {
    "war": skm.accuracy_score(y, p),
    "uar": skm.recall_score(y, p, labels=present, average="macro", zero_division=0),
    "f1_weighted": skm.f1_score(y, p, labels=present, average="weighted", zero_division=0),
    "f1_macro": skm.f1_score(y, p, labels=present, average="macro", zero_division=0),
    "confusion": skm.confusion_matrix(y, p, labels=range(7)).tolist(),
  }


@pytest.mark.slow
def test_er7_five_folds_write_every_report_and_match_sklearn(small_data_dir, tmp_path):
  workdir = tmp_path / "er7"
  _python(
    "-m",
    "emer_jax.main",
    "--config=configs/protocols/er7.py:small,multitask",
    f"--workdir={workdir}",
    f"--config.data_dir={small_data_dir}",
    *FAST,
    *TINY,
    EYES,
  )
  results = json.loads((workdir / "results.json").read_text())
  assert [(r["fold"], r["seed"]) for r in results["runs"]] == [(k, 0) for k in range(1, 6)]
  for run in results["runs"]:
    frame = predictions.read_predictions(workdir / f"predictions_fold{run['fold']}_seed0.csv")
    assert len(frame) == run["num_test"]
    for target in ("er_emotion", "fer_emotion"):
      columns = [f"prob_{target}_{c}" for c in TARGETS[target].class_names]
      np.testing.assert_array_equal(frame[columns].to_numpy().argmax(1), frame[f"pred_{target}"])
      expected = _sklearn_metrics(frame, target)
      got = run["metrics"][target]
      assert got["confusion"] == expected.pop("confusion")
      for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), (target, name)
      masked = frame["er_emotion"] != frame["fer_emotion"]
      np.testing.assert_array_equal(frame["masked"], masked.astype(int))
      for subset, rows in (("masked", masked), ("unmasked", ~masked)):
        if rows.any():
          expected = skm.accuracy_score(frame[target][rows], frame[f"pred_{target}"][rows])
          assert got[f"war_{subset}"] == pytest.approx(expected, abs=1e-12), (target, subset)
  wars = [r["metrics"]["er_emotion"]["war"] for r in results["runs"]]
  assert results["mean"]["er_emotion/war"] == pytest.approx(np.mean(wars))
  assert results["std"]["er_emotion/war"] == pytest.approx(np.std(wars, ddof=1))

  reference = results["reference_style"]
  assert reference["batch_size"] == 16 and "Not pooled" in reference["note"]
  frame = predictions.read_predictions(workdir / "predictions_fold3_seed0.csv")
  expected = reference_style_metrics(
    frame["er_emotion"], frame["pred_er_emotion"], "classification"
  )
  assert reference["runs"][2]["metrics"]["er_emotion"] == pytest.approx(expected)

  table = pd.read_csv(workdir / "results.csv")
  assert list(table["fold"]) == ["1", "2", "3", "4", "5", "mean", "std", "ci95_lo", "ci95_hi"]
  lo, hi = results["ci95"]["er_emotion/war"]
  assert lo <= results["mean"]["er_emotion/war"] <= hi and results["bootstrap"]["resamples"] == 1000
  lo, hi = results["ci95"]["er_emotion/war_masked"]
  assert lo <= results["mean"]["er_emotion/war_masked"] <= hi
  assert {"er_emotion/war", "er_emotion/ref_war", "fer_emotion/uar"} <= set(table.columns)
  assert "Reference-style" in (workdir / "results.md").read_text()
  recall = pd.read_csv(workdir / "per_class_recall.csv")
  assert len(recall) == 10 and "happiness" in recall.columns
  plots = set(os.listdir(workdir / "plots"))
  for k in range(1, 6):
    for name in ("confusion_er_emotion", "recall_fer_emotion", "learning_curves"):
      assert f"{name}_fold{k}_seed0.png" in plots, name
  assert "confusion_er_emotion_all.png" in plots


@pytest.mark.slow
def test_suite_runs_cells_once_and_writes_the_table(small_data_dir, tmp_path):
  suite_config = tmp_path / "micro_suite.py"
  suite_config.write_text(
    f"""
import ml_collections
from configs.suite import get_config as suite

def get_config():
  c = suite("small")
  c.protocols = ("er_va",)
  c.model_names = ("eye_only", "eye_lstm")
  c.overrides = ml_collections.ConfigDict({{
      "data_dir": {small_data_dir!r}, "folds": (1, 2), "total_steps": 2, "eval_every_steps": 2,
      "model": {{"sequence_encoder": {{"num_layers": 1}}, "feature_dim": 16, "token_dim": 16,
                 "face_encoder": {{"widths": (4, 8, 8, 8)}},
                 "transformer": {{"num_heads": 2, "head_dim": 8, "mlp_dim": 16}}}}}})
  return c
"""
  )
  workdir = tmp_path / "suite"
  args = ("-m", "emer_jax.suite", f"--config={suite_config}", f"--workdir={workdir}")
  out = _python(*args, env={"PYTHONPATH": REPO})
  assert "er_va er_valence/ccc" in out
  cells = [workdir / "er_va" / m for m in ("eye_only", "eye_lstm")]
  for cell in cells:
    assert (cell / "plots" / "scatter_er_arousal_fold2_seed0.png").exists()
  table = pd.read_csv(workdir / "comparison.csv")
  assert list(table["model"]) == ["eye_only", "eye_lstm"]
  assert list(table.columns[1:]) == [
    f"er_va er_{d}/{m}" for d in ("valence", "arousal") for m in ("mae", "ccc")
  ]
  assert all(" ± " in cell for cell in table.iloc[:, 1:].to_numpy().ravel())
  assert "\\textbf" in (workdir / "comparison.tex").read_text()

  # A finished cell is read, not trained again.
  stamps = [os.path.getmtime(cell / "results.json") for cell in cells]
  _python(*args, env={"PYTHONPATH": REPO})
  assert [os.path.getmtime(cell / "results.json") for cell in cells] == stamps


def test_every_suite_cell_has_a_config():
  from configs.suite import get_config

  suite = get_config()
  for protocol in suite.protocols:
    for model in suite.model_names:
      config = cell_config(suite, protocol, model)
      assert config.protocol == protocol
  assert cell_config(suite, "er7", "face_only").model.modalities == ("face",)
  assert cell_config(suite, "er7", "tfn").model.variant == "tfn"
  assert cell_config(suite, "fer3", "emert_multitask").extra_targets == ("er_polarity",)
