"""A study of two trackers trained on and predicted from, with its own labels (issue 26, 5–6)."""

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from emer_jax import config_check, dataset_targets, protocols
from emer_jax.config import base_config
from emer_jax.errors import UserError
from emer_jax.evaluation import corruptions
from tests.test_train import REPO, TINY
from tfds_emer import build, fake_study
from tfds_emer.trackers import schema

PLAN = fake_study.Plan(recordings=16, subjects=4, frames=4, seconds=1.0, eye_rate=30.0)
SMALL = [
  *TINY,
  "--config.model.face_encoder.num_frames=2",
  "--config.model.sequence_length=8",
]


@pytest.fixture(scope="session")
def built_study(tmp_path_factory):
  """(study folder, data_dir): 16 recordings of 4 subjects, Tobii TSV and Gazepoint CSV eye
  files, face videos and frame folders, built as `emer_study/my_study` (the build validates
  every recording first, as `validate` does, and records the formats it found)."""
  root = tmp_path_factory.mktemp("study") / "my_study"
  fake_study.write_study(root, PLAN)
  data_dir = tmp_path_factory.mktemp("study_data")
  build.build_study(root, data_dir, face_frames=2, workers=1)
  info = tfds.builder("emer_study/my_study", data_dir=str(data_dir)).info
  assert set(info.metadata["formats"].values()) == {"tobii", "gazepoint"}
  return root, str(data_dir)


def _config(data_dir, protocol):
  c = base_config()
  c.dataset, c.data_dir, c.protocol = "emer_study/my_study", data_dir, protocol
  return c


def test_a_study_label_is_a_target_with_the_datasets_classes(built_study):
  _, data_dir = built_study
  config = dataset_targets.resolve(_config(data_dir, "study:emotion"))
  assert protocols.TARGETS["emotion"].class_names == fake_study.EMOTIONS
  assert (config.model.num_eye_features, config.model.num_gaze_features) == (22, 2)
  config = dataset_targets.resolve(_config(data_dir, "study:valence"))
  assert config.labels.to_dict() == {"valence": {"kind": "regression", "classes": ()}}
  assert protocols.head_sizes(["valence"]) == {"valence": 1}
  with pytest.raises(UserError) as e:
    dataset_targets.resolve(_config(data_dir, "study:arousal"))
  message = str(e.value)
  assert "\n" not in message
  assert "'arousal'" in message and "emotion (7 classes), valence (regression)" in message
  with pytest.raises(UserError, match="extra_targets"):
    dataset_targets.resolve(_config(data_dir, "study:emotion,valence"))
  with pytest.raises(UserError, match="study:<label>"):
    dataset_targets.resolve(_config(data_dir, "er7"))
  assert any("protocol='study:'" in e for e in config_check.config_errors(_config("", "study:")))


def test_a_study_trains_from_the_command_line_and_predicts_from_mixed_exports(
  built_study, tmp_path
):
  study, data_dir = built_study
  workdir = tmp_path / "run"
  train = [
    sys.executable,
    "-m",
    "emer_jax.main",
    "--config=configs/study.py",
    "--config.dataset=emer_study/my_study",
    f"--config.data_dir={data_dir}",
    "--config.protocol=study:emotion",
    f"--workdir={workdir}",
    "--config.extra_targets=('valence',)",
    "--config.total_steps=2",
    "--config.eval_every_steps=2",
    "--config.checkpoint_every_steps=2",
    *SMALL,
  ]
  out = subprocess.run(train, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["targets"] == ["emotion"] and "emotion/war" in results["mean"]
  labels = results["config"]["labels"]
  assert labels["emotion"] == {"kind": "classification", "classes": list(fake_study.EMOTIONS)}
  assert labels["valence"]["kind"] == "regression"
  assert results["config"]["model"]["num_eye_features"] == 22

  output = tmp_path / "predicted.json"
  predict = [
    sys.executable,
    "-m",
    "emer_jax.predict",
    f"--workdir={workdir}",
    f"--input_dir={study}",
    f"--output={output}",
    "--nopicture",
  ]
  out = subprocess.run(predict, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  recordings = {r["id"]: r for r in json.loads(output.read_text())["recordings"]}
  assert len(recordings) == 16
  assert {r["eye_format"] for r in recordings.values()} == {"tobii", "gazepoint"}
  # Each test recording is predicted as the run's evaluation predicted its built sample.
  tested = pd.read_csv(workdir / "predictions_fold1_seed0.csv")
  for _, row in tested.iterrows():
    heads = recordings[row["sample_id"]]["heads"]
    assert set(heads) == {"emotion", "valence"}
    probabilities = heads["emotion"]["probabilities"]
    assert list(probabilities) == list(fake_study.EMOTIONS)
    for name, p in probabilities.items():
      assert p == pytest.approx(row[f"prob_emotion_{name}"], abs=1e-4)


def test_rows_dropped_by_robustness_look_like_a_study_builds_lost_rows():
  rng = np.random.default_rng(0)
  values = rng.normal(size=(24, schema.WIDTH)) * 50 + 100
  values[:, schema.INDEX["time_ms"]] = np.arange(24) * 20.0
  invalid = np.zeros(24, bool)
  invalid[5:13] = True
  lost = values.copy()
  for field in ("gaze_x", "gaze_y", "pupil_left", "pupil_right", "fixation_x", "fixation_y"):
    lost[invalid, schema.INDEX[field]] = np.nan
  lost[np.ix_(invalid, [schema.INDEX["valid_left"], schema.INDEX["valid_right"]])] = 0.0
  raw = schema.filled(schema.Recording(values, "test", "-"))
  expected = schema.filled(schema.Recording(lost, "test", "-"))
  mean, std = raw.mean(axis=0), raw.std(axis=0) + 1.0
  gaze = slice(1, 3)
  eye, gaze_rows = corruptions.drop_eye_rows(
    jnp.asarray((raw - mean) / std),
    jnp.asarray((raw[:, gaze] - mean[gaze]) / std[gaze]),
    jnp.asarray(invalid),
    (mean, std),
    (mean[gaze], std[gaze]),
  )
  np.testing.assert_allclose(np.asarray(eye) * std + mean, expected, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(
    np.asarray(gaze_rows) * std[gaze] + mean[gaze], expected[:, gaze], rtol=1e-5, atol=1e-3
  )
