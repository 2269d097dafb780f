"""Folders a command will write, checked before anything is created; write errors named.

`check_writable_dir(path, what)` raises `PathError` when `path` is a file, or neither it nor the
nearest folder above it that exists can be written; `check_writable_file(path, what)` the same
for a file to write (an existing folder there is refused). `check_run_paths(config, workdir)` checks a
run's workdir and, when its dataset is not built yet, its data_dir. `writing(path, what)` turns
an OSError raised while writing (disk full, permission) into one line naming both.
"""

import contextlib
import errno
import os

from emer_jax import config_check
from tfds_emer import logs


class PathError(config_check.UserError):
  pass


def _nearest_existing(path: str) -> str:
  path = os.path.abspath(path)
  while not os.path.lexists(path):
    path = os.path.dirname(path)
  return path


def check_writable_dir(path: str, what: str, *, write: bool = True) -> None:
  """Raises PathError unless `path` is, or can be created as, a folder this process can write
  (with `write=False`: a folder, or nothing yet)."""
  path = os.path.abspath(os.path.expanduser(path))
  existing = _nearest_existing(path)
  if not os.path.isdir(existing):
    why = (
      "is a file, not a folder" if existing == path else f"is not a folder ({existing} is a file)"
    )
    raise PathError(f"{what} {path} {why}.")
  if write and not os.access(existing, os.W_OK | os.X_OK):
    where = path if existing == path else f"{path} (the nearest existing folder is {existing})"
    raise PathError(f"{what} {where} cannot be written: permission denied or a read-only disk.")


def check_writable_file(path: str, what: str) -> None:
  """Raises PathError unless `path` is, or can be created as, a file this process can write."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(path):
    raise PathError(f"{what} {path} is a folder, not a file.")
  existing = _nearest_existing(os.path.dirname(path))
  if not os.path.isdir(existing):
    raise PathError(f"{what} {path} is not in a folder ({existing} is a file).")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise PathError(
      f"{what} {path} cannot be written (in {existing}): permission denied or a read-only disk."
    )


def check_run_paths(config, workdir: str) -> None:
  """The workdir can be written, and the data_dir too where a synthetic dataset is still to be
  built there."""
  from emer_jax.data.source import resolve_data_dir  # noqa: PLC0415  (imports TFDS)

  check_writable_dir(workdir, "--workdir")
  data_dir = resolve_data_dir(config.data_dir)
  name = config.dataset.split(":")[0]
  folder = os.path.join(data_dir, name)  # holds <version>/ once built
  built = os.path.isdir(folder) and any(e[:1].isdigit() for e in os.listdir(folder))
  check_writable_dir(data_dir, "--config.data_dir", write=not built and "synthetic" in name)


@contextlib.contextmanager
def writing(path: str, what: str):
  """Re-raises an OSError of the block, or a library's error for a full disk (Orbax's
  tensorstore says RESOURCE_EXHAUSTED), as PathError: 'Cannot write <what> to <path>: <why>'."""
  try:
    with logs.library_errors_hidden():
      yield
  except Exception as e:
    full = getattr(e, "errno", None) == errno.ENOSPC or any(
      s in str(e) for s in ("RESOURCE_EXHAUSTED", "No space left on device")
    )
    if full:
      reason = "no space left on the disk"
    elif isinstance(e, OSError):
      reason = (e.strerror or str(e)).lower()
    else:
      raise
    raise PathError(f"Cannot write {what} to {path}: {reason}.") from e
