"""Running a command-line entry point: bad input is one line on stderr, never a traceback.

`run(main)` is `absl.app.run(main)`, with library logs quiet unless --verbosity is given
(`tfds_emer.logs.run`), where a misspelt `--config.key` names the key and the nearest
valid ones, and a `config_check.UserError` (bad config, changed workdir config, nothing to
evaluate, a checkpoint that does not fit), a held lock or a missing file ends the process with
its message and exit status 1. Ctrl-C ends with status 130 after closing what was open.
Every command keeps JAX's compiled programs in a persistent cache (`--compilation_cache`), so a
rerun with shapes already compiled skips compiling them.
Path flags (`define_path`) hold absolute paths once parsed, so a relative `--workdir=runs/x`
works wherever a library (Orbax) wants an absolute one.
"""

import importlib.util
import os
import sys
import traceback

import jax
from absl import flags

from emer_jax import config_check
from tfds_emer import logs
from tfds_emer.build import DatasetDamaged
from tfds_emer.locks import LockHeld
from tfds_emer.release import ReleaseError

USER_ERRORS = (config_check.UserError, LockHeld, FileNotFoundError, DatasetDamaged, ReleaseError)

flags.DEFINE_string(
  "compilation_cache",
  None,
  "Folder of JAX's persistent compilation cache, shared by every command and run ('off': none). "
  "Default: $JAX_COMPILATION_CACHE_DIR if set, else $XDG_CACHE_HOME/emer_jax/jax "
  "(~/.cache/emer_jax/jax).",
)


def compilation_cache_dir(value: str | None) -> str | None:
  """The cache folder `--compilation_cache=value` names (None: the default), or None for 'off'."""
  if value is None:
    value = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emer_jax", "jax"
    )
  return None if value.strip().lower() == "off" else os.path.abspath(os.path.expanduser(value))


def use_compilation_cache(value: str | None = None) -> str | None:
  """Turns JAX's persistent compilation cache on in `compilation_cache_dir(value)`; returns it.

  Every program is kept (JAX's default keeps only those compiling for over a second; the
  quickstart's evaluation steps compile in less but add up). The folder may be deleted at any
  time; it only grows with new shapes and configs.
  """
  folder = compilation_cache_dir(value)
  if folder is not None:
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return folder


class _PathParser(flags.ArgumentParser):
  """A path flag's value, made absolute (and `~` expanded) as the flags are read: libraries
  such as Orbax refuse relative paths, and a later chdir cannot change what it names."""

  def parse(self, argument):
    return os.path.abspath(os.path.expanduser(argument)) if argument else argument

  def flag_type(self):
    return "path"


def define_path(name: str, default, help_text: str, **kwargs):
  """`flags.DEFINE_string` for a file or folder: its value is absolute once parsed."""
  return flags.DEFINE(
    _PathParser(), name, default, help_text, serializer=flags.ArgumentSerializer(), **kwargs
  )


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
  # Before parsing: ml_collections prints a traceback of a config file that fails to load.
  message = config_file_error(argv)
  if message:
    _fail(message)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001
    _fail(flag_error(argv, e), status=2)


def _fail(message: str, status: int = 1):
  logs.hide_library_errors()  # the process ends here: writer threads' logs of it stay hidden
  print(f"Error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(status)


def run(main, user_errors=()) -> int:
  """`app.run(main)` with the compilation cache on; `user_errors` are more exception types
  printed as one line."""

  def cached_main(argv):
    use_compilation_cache(flags.FLAGS.compilation_cache)
    return main(argv)

  try:
    logs.run(cached_main, flags_parser=_parse_flags)
  except USER_ERRORS + tuple(user_errors) as e:
    _fail(e)
  except KeyboardInterrupt as e:  # the trainer's says where the run stopped
    message = str(e) or "Interrupted. Rerun the same command to resume from the last checkpoint."
    print(message, file=sys.stderr, flush=True)
    return 130
  return 0
