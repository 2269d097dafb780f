"""Quiet output for the commands and notebooks: what helps the user, not what libraries chatter.

  logs.run(main)   instead of absl's app.run(main) in a command
  logs.quiet()     once in a notebook (or any program not started by `run`)

Library logs (jax, tfds, orbax, grain) show at WARNING and above, and a few warnings that never
mean anything is wrong are dropped. `--verbosity=0` (INFO) or higher brings everything back.
"""

import contextlib
import logging
import sys
import warnings

from absl import app, flags
from absl import logging as absl_logging

# Templates (record.msg) of library log records that report nothing wrong.
NOISE = (
  # tfds, on a dataset not built yet: the version folder it is about to write holds no
  # dataset_info.json (the lock file, or nothing yet).
  "Variant folder %s has no %s",
  # tfds, on each `emer_study` builder: its config is made from the study, as designed.
  "Using custom data configuration: %s",
  # orbax, reading one item of a checkpoint (a run's `best/<step>/model`): the step's own
  # metadata file lives a folder up.
  "Metadata file does not exist: %s",
)


class DropNoise(logging.Filter):
  def filter(self, record):
    return record.msg not in NOISE


_DROP_NOISE = DropNoise()


def quiet():
  """Library logs at WARNING, the `NOISE` records dropped; idempotent."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  logger = logging.getLogger("absl")  # tfds logs through absl
  if _DROP_NOISE not in logger.filters:
    logger.addFilter(_DROP_NOISE)
  # tqdm.auto without ipywidgets (a notebook without them) falls back to a text bar: say nothing.
  warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")


def _verbosity_given() -> bool:
  return bool(flags.FLAGS["verbosity"].present)


def hide_library_errors():
  """Hides library error logs from now on, unless --verbosity: for a command about to end with
  its one-line error (Orbax logs a full disk from each of its writer threads, asyncio each
  task's error again at exit). Returns a function that shows them again."""
  if flags.FLAGS.is_parsed() and _verbosity_given():
    return lambda: None
  verbosity, excepthook = absl_logging.get_verbosity(), sys.excepthook
  levels = {name: logging.getLogger(name).level for name in ("", "asyncio")}
  absl_logging.set_verbosity(absl_logging.FATAL)
  for name in levels:
    logging.getLogger(name).setLevel(logging.CRITICAL)
  # tensorstore's callbacks into an asyncio loop Orbax has closed print through sys.excepthook
  sys.excepthook = lambda *args: None

  def show():
    absl_logging.set_verbosity(verbosity)
    sys.excepthook = excepthook
    for name, level in levels.items():
      logging.getLogger(name).setLevel(level)

  return show


@contextlib.contextmanager
def library_errors_hidden():
  """Library error logs are hidden in the block (see `hide_library_errors`): for a call whose
  failure reaches the caller as an exception that the command says in one line."""
  show = hide_library_errors()
  try:
    yield
  finally:
    show()


def run(main, **kwargs):
  """`app.run(main, **kwargs)`, quiet (see `quiet`) unless --verbosity (-v) is on the command line."""

  def quiet_main(argv):
    if not _verbosity_given():
      quiet()
    return main(argv)

  app.run(quiet_main, **kwargs)
