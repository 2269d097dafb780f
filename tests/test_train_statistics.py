"""A run's inputs depend on its training part only: the test fold never shapes them."""

import json
import os

from emer_jax import workdir as workdir_lib
from emer_jax.config import base_config
from emer_jax.data import pipeline
from emer_jax.data.source import EmerSource, open_source
from emer_jax.train import state as state_lib
from emer_jax.train import trainer
from tfds_emer.stats import RunningStats

TEST_FOLD = 5


class _LouderFold:
  """The samples of `source`, with the eye values of one fold's samples multiplied by 1000."""

  def __init__(self, source, folds):
    self._source, self._folds = source, folds

  def __len__(self):
    return len(self._source)

  def __getitem__(self, i):
    example = dict(self._source[i])
    if self._folds[int(i)] == TEST_FOLD:
      example["eye"] = example["eye"] * 1000
    return example


def _rebuilt(data: EmerSource) -> EmerSource:
  """`data` as a rebuild of a release whose test-fold eye values are 1000× larger: samples
  and the builder's whole-dataset statistics both change."""
  source = _LouderFold(data.source, data.index["fold"])
  eye, gaze = RunningStats(39), RunningStats(2)
  for i in range(len(source)):
    eye.add(source[i]["eye"])
    gaze.add(source[i]["gaze"])
  metadata = dict(data.metadata)
  metadata["eye_mean"], metadata["eye_std"] = eye.mean_std()
  metadata["gaze_mean"], metadata["gaze_std"] = gaze.mean_std()
  return EmerSource(source, metadata, data.index)


def _config(data_dir):
  c = base_config("eye_lstm")
  c.dataset, c.data_dir = "emer/synthetic_small", data_dir
  c.folds, c.val_fraction = (TEST_FOLD,), 0.0
  c.total_steps, c.log_every_steps, c.checkpoint_every_steps = 3, 1, 3
  c.learning_rate = 1e-2
  c.model.feature_dim = 8
  c.model.sequence_encoder.num_layers = 1
  c.model.head_hidden = ()
  return c


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [r["train/loss/total"] for r in rows if "train/loss/total" in r]


def test_test_fold_eye_values_leave_the_training_losses_unchanged(
  small_data_dir, tmp_path, monkeypatch
):
  original = open_source("emer/synthetic_small", small_data_dir, prepare=False)
  losses, stats = [], []
  for name, data in (("original", original), ("louder", _rebuilt(original))):
    monkeypatch.setattr(state_lib, "open_source", lambda *a, data=data, **k: data)
    workdir = str(tmp_path / name)
    trainer.train_and_evaluate(_config(small_data_dir), workdir)
    losses.append(_losses(workdir))
    path = workdir_lib.normalisation_path(workdir, TEST_FOLD, 0)
    stats.append(pipeline.load_normalisation(path).to_dict())
  assert len(losses[0]) == 3
  assert losses[0] == losses[1]
  assert stats[0] == stats[1] and stats[0]["eye_clocks"] == "relative"
