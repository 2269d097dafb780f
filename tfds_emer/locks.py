"""One writer at a time: an exclusive lock on a file that names its holder.

The lock is an `fcntl.flock` on `path`, so the kernel releases it when the holder dies; the file
holds the holder's host, pid and start time for the message a second process gets. A lock file
still naming a holder that no longer holds the lock (it was killed) is taken over with a warning.
A clean release deletes the file while still holding it; a process that locked the deleted file
meanwhile sees that `path` is no longer its file and tries again, so one holder is kept.
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket

log = logging.getLogger(__name__)


class LockHeld(RuntimeError):
  """Another live process holds the lock."""


def _holder(f) -> dict | None:
  f.seek(0)
  text = f.read().strip()
  if not text:
    return None
  try:
    return json.loads(text)
  except ValueError:
    return {"note": text[:200]}


def _describe(holder: dict | None) -> str:
  if not holder:
    return "another process (it left no name)"
  return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}"


@contextlib.contextmanager
def exclusive(path: str, what: str):
  """Holds `path` exclusively while the block runs; `what` names the guarded thing in messages.

  Raises LockHeld at once, naming the holder, when a live process holds it.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with _locked_file(path, what) as f:
    previous = _holder(f)
    if previous:
      log.warning(
        "Taking over the lock of %s left by %s, which no longer holds it (lock file %s).",
        what,
        _describe(previous),
        path,
      )
    me = {
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "since": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    f.seek(0)
    f.truncate()
    f.write(json.dumps(me))
    f.flush()
    try:
      yield
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked_file(path: str, what: str):
  """`path` opened and flock-ed, checked to still be the file at `path` once locked."""
  while True:
    with open(path, "a+") as f:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        raise LockHeld(
          f"{what} is in use by {_describe(_holder(f))} (lock file {path}). Wait for it to "
          "finish, or use another folder."
        ) from None
      try:
        current = os.stat(path).st_ino
      except FileNotFoundError:
        current = None
      if current == os.fstat(f.fileno()).st_ino:
        yield f
        return
