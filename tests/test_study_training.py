"""A study of two trackers trained on and predicted from, with its own labels (issue 26, 5–6)."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from emer_jax import config_check, dataset_targets, protocols
from emer_jax.config import base_config
from emer_jax.errors import UserError
from tests.test_train import REPO, TINY
from tfds_emer import build, fake_study
from tfds_emer.study.check import validate_study

PLAN = fake_study.Plan(recordings=16, subjects=4, frames=4, seconds=1.0, eye_rate=30.0)
SMALL = [
  *TINY,
  "--config.model.face_encoder.num_frames=2",
  "--config.model.sequence_length=8",
]


@pytest.fixture(scope="session")
def built_study(tmp_path_factory):
  """(study folder, data_dir): 16 recordings of 4 subjects, Tobii TSV and Gazepoint CSV eye
  files, face videos and frame folders, validated and built as `emer_study/my_study`."""
  root = tmp_path_factory.mktemp("study") / "my_study"
  fake_study.write_study(root, PLAN)
  report = validate_study(root)
  assert report.ok, report.text()
  assert set(report.formats.values()) == {"tobii", "gazepoint"}
  data_dir = tmp_path_factory.mktemp("study_data")
  build.build_study(root, data_dir, face_frames=2, workers=1)
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
