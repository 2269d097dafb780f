"""Quiet by default: library chatter dropped, real warnings kept."""

import logging

import tensorflow_datasets as tfds
from absl import logging as absl_logging

import tfds_emer  # noqa: F401  (registers `emer`)
from tfds_emer import logs


def test_quiet_drops_tfds_noise_and_keeps_warnings(tmp_path, caplog):
  verbosity = absl_logging.get_verbosity()
  try:
    logs.quiet()
    with caplog.at_level(logging.INFO):
      # A dataset not built yet: tfds warns that its version folder has no dataset_info.json.
      assert not tfds.builder("emer/synthetic_small", data_dir=str(tmp_path)).is_prepared()
      absl_logging.info("library chatter")
      absl_logging.warning("a real warning")
  finally:
    logging.getLogger("absl").removeFilter(logs._DROP_NOISE)
    absl_logging.set_verbosity(verbosity)
  assert "a real warning" in caplog.text
  assert "dataset_info.json" not in caplog.text, caplog.text


def test_library_errors_show_again_after_a_failed_block():
  """A library call that failed inside `library_errors_hidden` (a full disk under Orbax) leaves
  the process's logging as it was: later warnings of the same process still show."""
  verbosity, root = absl_logging.get_verbosity(), logging.getLogger().level
  try:
    with logs.library_errors_hidden():
      assert absl_logging.get_verbosity() == absl_logging.FATAL
      raise OSError(28, "No space left on device")
  except OSError:
    pass
  assert absl_logging.get_verbosity() == verbosity
  assert logging.getLogger().level == root


def test_reading_a_runs_best_model_says_nothing(finished, caplog):
  """As notebook 02 reads a run's selected weights: Orbax warned that the item's folder has no
  step metadata (it lives a folder up)."""
  import os

  from flax import nnx

  from emer_jax import models
  from emer_jax import workdir as workdir_lib
  from emer_jax.protocols import head_sizes
  from emer_jax.train.checkpoint import restore_model
  from emer_jax.train.state import run_targets

  workdir, config = finished
  best = os.path.join(workdir_lib.checkpoints_dir(workdir, "fold1_seed0"), "best")
  heads = head_sizes(run_targets(config))
  model = models.build_model(config.model, heads=heads, rngs=nnx.Rngs(0))
  verbosity = absl_logging.get_verbosity()
  try:
    logs.quiet()
    with caplog.at_level(logging.WARNING):
      restore_model(os.path.join(best, max(os.listdir(best), key=int), "model"), model)
  finally:
    logging.getLogger("absl").removeFilter(logs._DROP_NOISE)
    absl_logging.set_verbosity(verbosity)
  assert not caplog.records, caplog.text
