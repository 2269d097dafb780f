"""Ctrl-C during training stops the run between two steps, never inside a save.

The first Ctrl-C sets `pressed`; the fit loop checks it after each step, waits for the
checkpoints being written and raises `Interrupted`, whose message says where it stopped. A
second Ctrl-C interrupts at once (Python's KeyboardInterrupt).
"""

import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
  def __init__(self, name: str, step: int, checkpoint: int | None, total_steps: int):
    saved = f"the last checkpoint is step {checkpoint}" if checkpoint else "it has no checkpoint"
    super().__init__(
      f"Interrupted {name} at step {step} of {total_steps}; {saved}. Rerun the same command to "
      "resume."
    )


class BetweenSteps:
  """While open (in the main thread), the first Ctrl-C only sets `pressed`."""

  pressed = False

  def __enter__(self):
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._press)
    return self

  def _press(self, signum, frame):
    self.pressed = True
    self.restore()
    print(
      "\nCtrl-C: stopping after this step (again to stop at once).", file=sys.stderr, flush=True
    )

  def restore(self):
    """Ctrl-C interrupts at once again."""
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)
      self._previous = None

  def __exit__(self, *exc):
    self.restore()
