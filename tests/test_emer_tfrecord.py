"""tfrecord builds for tf.data (`tfds.load`), run only where TensorFlow is installed."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_emer import emer
from tfds_emer.sim.config import SimConfig

pytest.importorskip("tensorflow")

TINY = SimConfig(seed=11, num_subjects=2, num_samples=6)


def test_tfrecord_build_serves_tf_data(tmp_path):
  config = emer.EmerConfig(name="tiny_tfrecord", face_frames=8, sim=TINY)
  builder = emer.Emer(config=config, data_dir=str(tmp_path), file_format="tfrecord")
  builder.download_and_prepare(file_format="tfrecord")
  examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert len(examples) == TINY.num_samples
  source = emer.Emer(
    config=emer.EmerConfig(name="tiny_ar", face_frames=8, sim=TINY), data_dir=str(tmp_path)
  )
  source.download_and_prepare(file_format="array_record")
  reference = {ex["sample_id"]: ex for ex in source.as_data_source(split="train")}
  for ex in examples:
    ref = reference[ex["sample_id"]]
    assert ex["face"].shape == (8, 112, 112, 3) and ex["face"].dtype == np.uint8
    for key in ref:
      np.testing.assert_array_equal(ex[key], ref[key], err_msg=key)
  assert builder.info.metadata["eye_std"] == source.info.metadata["eye_std"]


def test_load_by_name(tmp_path):
  # What a user runs: the registered config, built as tfrecord, read with tfds.load.
  from tfds_emer.build import build

  build("synthetic_small", data_dir=str(tmp_path), file_format="tfrecord")
  ds = tfds.load("emer/synthetic_small", data_dir=str(tmp_path), split="train")
  ex = next(iter(tfds.as_numpy(ds.take(1))))
  assert ex["eye"].shape[1] == 39 and ex["fixation_map"].shape == (64, 64, 1)
