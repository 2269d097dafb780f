"""Fault injection: stop a command at a seeded moment, rerun it, compare with an uninterrupted run.

  stopped = faults.stop(cmd, seed=3, within=20.0, after="writing reports")
  out = faults.finish(cmd)
  assert faults.tree(rerun_dir) == faults.tree(reference_dir)

A moment is `after` (text the command prints, or a predicate) plus a delay drawn uniformly from
[0, within) by `numpy.random.default_rng(seed)`: `within` is the measured length of the stage.
"""

import contextlib
import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 600


@dataclasses.dataclass
class Stopped:
  returncode: int
  output: str
  delay: float  # seconds after the moment `after`

  @property
  def killed(self) -> bool:
    """Whether the signal ended it (not a command that had finished first)."""
    return self.returncode in (-signal.SIGKILL, 130)


def delay(seed: int, within: float) -> float:
  return float(np.random.default_rng(seed).uniform(0.0, within))


def command(module: str, *args) -> list[str]:
  return [sys.executable, "-m", module, *args]


def _start(cmd, log):
  # As a user runs it (jax looks for accelerators); a hung command's threads can be dumped.
  env = os.environ | {"JAX_PLATFORMS": "", "PYTHONFAULTHANDLER": "1"}
  # Its own process group: Ctrl-C in a terminal signals every process of the command.
  return subprocess.Popen(
    cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
  )


def _wait(proc, log, cmd) -> None:
  """Waits for `proc` at most TIMEOUT seconds; past that, has it print its Python threads
  (faulthandler, on SIGABRT), kills its process group and fails with the end of its output."""
  try:
    proc.wait(timeout=TIMEOUT)
  except subprocess.TimeoutExpired:
    os.kill(proc.pid, signal.SIGABRT)
    with contextlib.suppress(subprocess.TimeoutExpired):
      proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.seek(0)
    raise AssertionError(
      f"{' '.join(cmd)} still ran after {TIMEOUT} s; its output ends:\n{log.read()[-8000:]}"
    ) from None


def stop(cmd, *, seed: int, within: float, after=None, sig=signal.SIGKILL) -> Stopped:
  """Runs `cmd` and sends `sig` to its process group at the seeded moment."""
  pause = delay(seed, within)
  with tempfile.TemporaryFile("w+") as log:
    proc = _start(cmd, log)
    deadline = time.monotonic() + TIMEOUT
    while after is not None and proc.poll() is None and time.monotonic() < deadline:
      log.seek(0)
      if after(log.read()) if callable(after) else after in log.read():
        break
      time.sleep(0.01)
    try:
      proc.wait(timeout=pause)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, sig)
    _wait(proc, log, cmd)
    log.seek(0)
    return Stopped(proc.returncode, log.read(), pause)


def checkpointed(workdir, at_least: int):
  """A `stop` moment: some run of `workdir` has a `latest` checkpoint of step ≥ `at_least`."""

  def holds(_output) -> bool:
    root = os.path.join(workdir, "checkpoints")
    latest = (
      [os.path.join(root, run, "latest") for run in os.listdir(root)] if os.path.isdir(root) else []
    )
    return any(
      n.isdigit() and int(n) >= at_least for d in latest if os.path.isdir(d) for n in os.listdir(d)
    )

  return holds


def finish(cmd) -> str:
  """Runs `cmd` to the end; its output (stdout and stderr), which says nothing went wrong."""
  return timed(cmd)[1]


def assert_clean_exit(out: str):
  for text in ("Traceback", "Event loop is closed"):
    assert text not in out, out


def timed(cmd, after=None) -> tuple[float, str]:
  """(seconds, output) of an uninterrupted run, counted from the moment `after` (as in `stop`)
  holds: the length a seeded moment is drawn within."""
  with tempfile.TemporaryFile("w+") as log:
    proc = _start(cmd, log)
    start = time.monotonic()
    while after is not None and proc.poll() is None:
      log.seek(0)
      if after(log.read()) if callable(after) else after in log.read():
        start = time.monotonic()
        break
      time.sleep(0.01)
    _wait(proc, log, cmd)
    seconds = time.monotonic() - start
    log.seek(0)
    out = log.read()
  assert proc.returncode == 0, out
  assert_clean_exit(out)
  return seconds, out


def tree(root, skip=(), named=None) -> dict:
  """{relative path: sha256} of the files under `root`, but those whose path starts with `skip`;
  `named` (a folder) is read as "W" in the files, which may name where they were written."""
  out = {}
  for parent, _, files in os.walk(root):
    for name in files:
      path = os.path.join(parent, name)
      rel = os.path.relpath(path, root)
      if not rel.startswith(tuple(skip)):
        with open(path, "rb") as f:
          data = f.read()
        if named:
          data = data.replace(os.fsencode(named), b"W")
        out[rel] = hashlib.sha256(data).hexdigest()
  return out
