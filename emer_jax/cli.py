"""Running a command-line entry point: bad input is one line on stderr, never a traceback.

`run(main)` is `absl.app.run(main)`, with library logs quiet unless --verbosity is given
(`tfds_emer.logs.run`), where a misspelt `--config.key` names the key and the nearest
valid ones, and a `config_check.UserError` (bad config, changed workdir config, nothing to
evaluate, a checkpoint that does not fit), a held lock or a missing file ends the process with
its message and exit status 1. Ctrl-C ends with status 130 after closing what was open.
"""

import importlib.util
import os
import sys
import traceback

from absl import flags

from emer_jax import config_check
from tfds_emer import logs
from tfds_emer.build import DatasetDamaged
from tfds_emer.locks import LockHeld
from tfds_emer.release import ReleaseError

USER_ERRORS = (config_check.UserError, LockHeld, FileNotFoundError, DatasetDamaged, ReleaseError)


def _load_config_file(argv, name="config"):
  """The config a `--config=path[:arg]` flag names, loaded as config_flags does."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)
  if spec is None:
    return None
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_config_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def config_file_error(argv, name="config") -> str | None:
  """'config file X does not exist', or 'X line N: ZeroDivisionError: …' for a config file
  that raises; None when the `--config=` file loads (or none is given)."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)
  if spec is None:
    return None
  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    return f"config file {path} does not exist"
  try:
    _load_config_file(argv, name)
  except Exception as e:  # noqa: BLE001  (the user's file: any error is theirs)
    mine = os.path.abspath(path)
    frames = [
      f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == mine
    ]
    line = f" line {frames[-1].lineno}" if frames else ""
    return f"{path}{line}: {type(e).__name__}: {e}"
  return None


def flag_error(argv, error: Exception) -> str:
  """One line for a flag parsing error: an unknown `--config.` key with its nearest, else the
  error's own last line."""
  try:
    config = _load_config_file(argv)
  except Exception:  # noqa: BLE001  (`config_file_error` tells)
    config = None
  if config is not None:
    for arg in argv:
      if arg.startswith("--config."):
        message = config_check.unknown_key(config, arg.removeprefix("--config.").split("=")[0])
        if message:
          return message
  lines = [line for line in str(error).strip().splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__


def _parse_flags(argv):
  message = config_file_error(argv)
  if message:
    _fail(message)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001
    _fail(flag_error(argv, e), status=2)


def _fail(message: str, status: int = 1):
  print(f"Error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(status)


def run(main, user_errors=()) -> int:
  """`app.run(main)`; `user_errors` are more exception types printed as one line."""
  try:
    logs.run(main, flags_parser=_parse_flags)
  except USER_ERRORS + tuple(user_errors) as e:
    _fail(e)
  except KeyboardInterrupt as e:  # the trainer's says where the run stopped
    message = str(e) or "Interrupted. Rerun the same command to resume from the last checkpoint."
    print(message, file=sys.stderr, flush=True)
    return 130
  return 0
