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
