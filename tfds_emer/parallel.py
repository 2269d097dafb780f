"""An ordered map over worker processes that keeps only a few results in flight."""

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import sys


def default_workers(num_items: int | None = None, per_worker: int = 8) -> int:
  """The CPU cores this process may use; for `num_items` items, at most one worker per
  `per_worker` items (starting a worker costs about as much as a few items)."""
  cores = len(os.sched_getaffinity(0))
  return cores if num_items is None else max(1, min(cores, num_items // per_worker))


def ordered_map(fn, items, workers: int, *, initializer=None, initargs=(), ahead: int = 2):
  """Yields `fn(item)` for each item, in order, computed by `workers` spawned processes.

  At most `workers * ahead` items are in flight, so a slow consumer bounds memory. With
  `workers <= 1` everything runs in this process.
  """
  if workers <= 1:
    if initializer is not None:
      initializer(*initargs)
    yield from map(fn, items)
    return
  pool = concurrent.futures.ProcessPoolExecutor(
    workers,
    mp_context=multiprocessing.get_context("spawn"),
    initializer=initializer,
    initargs=initargs,
  )
  pending = collections.deque()
  try:
    for item in items:
      with _main_script_hidden():  # a submit may start a worker
        pending.append(pool.submit(fn, item))
      if len(pending) >= workers * ahead:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
  finally:
    pool.shutdown(cancel_futures=True)


@contextlib.contextmanager
def _main_script_hidden():
  """A spawned worker runs the main script again unless it is a module (`python -m`); a script
  without an `if __name__ == "__main__":` guard (a notebook's `.py` twin) would redo its work in
  every worker. Workers need only the modules of `fn` and `initializer`."""
  main = sys.modules.get("__main__")
  path = getattr(main, "__file__", None)
  if path is None or getattr(main, "__spec__", None) is not None:
    yield
    return
  del main.__file__
  try:
    yield
  finally:
    main.__file__ = path
