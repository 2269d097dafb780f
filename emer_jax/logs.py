"""What the emer_jax commands tell the user: phases, progress bars, and what they wrote.

Every entry point starts with `logs.run(main)` (quiet library logs unless --verbosity is given,
see tfds_emer.logs); notebooks call `logs.quiet()`. Phases and bars go to stderr, from process 0
only; results and "wrote" lines go to stdout.
"""

import importlib.util
import os
import sys

import jax

from tfds_emer.logs import quiet, run

__all__ = ["phase", "progress", "quiet", "run", "wrote"]


def _main_process() -> bool:
  return jax.process_index() == 0


def phase(text: str):
  """One line naming what starts now, e.g. 'fold1_seed0: compiling the train step'."""
  if _main_process():
    print(text, file=sys.stderr, flush=True)


def _tqdm():
  """Widgets in a notebook that has ipywidgets, text elsewhere (never tqdm's IProgress warning)."""
  if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
  else:
    from tqdm.std import tqdm
  return tqdm


def progress(total: int, desc: str, *, initial: int = 0, unit: str = "step", leave: bool = True):
  """A progress bar on process 0 (others get a disabled one), labelled with its phase."""
  return _tqdm()(
    total=total,
    initial=initial,
    desc=desc,
    unit=unit,
    leave=leave,
    disable=not _main_process(),
    dynamic_ncols=True,
  )


def wrote(what: str, path, note: str = "") -> str:
  """'wrote <what>: <path>  (<note>)' on stdout; returns the line."""
  line = f"wrote {what}: {os.fspath(path)}" + (f"  ({note})" if note else "")
  if _main_process():
    print(line, flush=True)
  return line
