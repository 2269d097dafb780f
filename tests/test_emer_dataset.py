"""The `emer` TFDS dataset built from EMER-Sim: schema, labels, determinism, no-TF reading."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from emer_jax.protocols import EMOTIONS, POLARITIES
from tfds_emer import emer, eye_export
from tfds_emer.sim.config import SimConfig

TINY = SimConfig(seed=7, num_subjects=3, num_samples=30)


def tiny_config(name="tiny"):
  return emer.EmerConfig(name=name, face_frames=8, sim=TINY)


def build(data_dir, name="tiny"):
  builder = emer.Emer(config=tiny_config(name), data_dir=str(data_dir))
  builder.download_and_prepare(file_format="array_record")
  return builder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
  builder = build(tmp_path_factory.mktemp("emer"))
  source = builder.as_data_source(split="train")
  return builder, [source[i] for i in range(len(source))]


def test_configs_registered():
  names = {c.name for c in emer.Emer.BUILDER_CONFIGS}
  assert names == {"synthetic", "synthetic_small", "real"}
  assert emer.Emer.DEFAULT_CONFIG_NAME == "synthetic"
  assert tfds.builder_cls("emer") is emer.Emer
  small = emer.Emer.builder_configs["synthetic_small"].sim
  assert small.num_samples <= 200
  paper = emer.Emer.builder_configs["synthetic"].sim
  assert (paper.num_samples, paper.num_subjects) == (1303, 121)


def test_schema_and_shapes(tiny):
  _, examples = tiny
  assert len(examples) == TINY.num_samples
  for ex in examples:
    assert ex["face"].shape == (8, 112, 112, 3) and ex["face"].dtype == np.uint8
    assert ex["eye"].dtype == np.float32 and ex["eye"].shape[1] == 39
    assert ex["gaze"].dtype == np.float32 and ex["gaze"].shape == (len(ex["eye"]), 2)
    assert ex["fixation_map"].shape == (64, 64, 1) and ex["fixation_map"].dtype == np.float32
    for key in ("eye", "gaze", "fixation_map"):
      assert np.isfinite(ex[key]).all(), key
    assert 0 <= ex["fixation_map"].min() and ex["fixation_map"].max() == pytest.approx(1.0)
    np.testing.assert_array_equal(ex["gaze"], ex["eye"][:, 2:4])


def test_label_ranges_and_consistency(tiny):
  _, examples = tiny
  for ex in examples:
    for view in ("er", "fer"):
      v, a = ex[f"{view}_valence"], ex[f"{view}_arousal"]
      assert -1 <= v <= 1 and -1 <= a <= 1
      assert 0 <= ex[f"{view}_emotion"] < len(EMOTIONS)
      expected = POLARITIES.index("positive" if v > 0 else "negative" if v < 0 else "neutral")
      assert ex[f"{view}_polarity"] == expected
    assert ex["er_valence"] * 4 == round(ex["er_valence"] * 4)
    assert ex["er_arousal"] * 4 == round(ex["er_arousal"] * 4)
    assert 0 <= ex["fer_intensity"] <= 3
    assert (ex["fer_intensity"] == 0) == (ex["fer_emotion"] == EMOTIONS.index("neutral"))
    assert 1 <= ex["fold"] <= 5
    subject, stimulus, _ = ex["sample_id"].decode().split("_")
    assert int(subject) == ex["subject_id"] and ("film", "sport")[ex["stimulus"]] == stimulus


def test_masking_gap_exists(tiny):
  _, examples = tiny
  same = [ex["er_emotion"] == ex["fer_emotion"] for ex in examples]
  assert 0 < np.mean(same) < 1


def test_metadata(tiny):
  builder, examples = tiny
  meta = builder.info.metadata
  assert meta["eye_columns"] == list(eye_export.COLUMNS)
  assert len(meta["eye_mean"]) == len(meta["eye_std"]) == 39
  assert len(meta["gaze_mean"]) == len(meta["gaze_std"]) == 2
  rows = np.concatenate([ex["eye"] for ex in examples]).astype(np.float64)
  np.testing.assert_allclose(meta["eye_mean"], rows.mean(0), rtol=1e-4, atol=1e-4)
  assert min(meta["eye_std"]) > 0
  reloaded = emer.Emer(config=tiny_config(), data_dir=builder.data_dir.split("/emer/")[0])
  assert reloaded.info.metadata["gaze_std"] == meta["gaze_std"]


def test_two_builds_identical(tiny, tmp_path):
  _, first = tiny
  source = build(tmp_path).as_data_source(split="train")
  assert len(source) == len(first)
  for a, b in zip(first, (source[i] for i in range(len(source))), strict=True):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


_NO_TF_SCRIPT = """
import json, sys
import tensorflow_datasets as tfds
import tfds_emer
data_dir = sys.argv[1]
tfds.builder('emer/synthetic_small', data_dir=data_dir).download_and_prepare(
    file_format='array_record')
source = tfds.data_source('emer/synthetic_small', data_dir=data_dir, split='train')
ex = source[0]
print(json.dumps({'tf': 'tensorflow' in sys.modules, 'n': len(source),
                  'face': list(ex['face'].shape), 'type': type(ex['eye']).__name__}))
"""


def test_synthetic_small_builds_and_reads_without_tensorflow(tmp_path):
  out = subprocess.run(
    [sys.executable, "-c", _NO_TF_SCRIPT, str(tmp_path)],
    capture_output=True,
    text=True,
    check=True,
  )
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result == {"tf": False, "n": 190, "face": [16, 112, 112, 3], "type": "ndarray"}
