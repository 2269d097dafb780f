"""The eye-tracker formats the toolkit reads, one registry, detected from a file's content.

Each format is a module of this package with a `FORMAT` (a `Format`): its name, a `detect`
that looks at a file or folder and says whether it is that format, a `read` that fills the
common schema (`tfds_emer.trackers.schema`), and the pip extra it needs, if any. `read` takes
the path and a dict of options (from `study.json`: `screen_px`, the column map of the generic
reader, a format's own options).
"""

import dataclasses
import importlib
import pathlib
from collections.abc import Callable

from tfds_emer.trackers.schema import Recording, RecordingError

# Modules of this package that define a FORMAT, in the order detection tries them: the
# specific formats first, the generic column-mapped CSV last.
MODULES = ("tobii", "imotions", "eyelink", "pupil_labs", "gazepoint", "generic")


@dataclasses.dataclass(frozen=True)
class Format:
  name: str
  description: str  # for the README's table and error messages, e.g. "Tobii Pro Lab TSV/CSV/XLSX"
  detect: Callable[[pathlib.Path], bool]
  read: Callable[[pathlib.Path, dict], Recording]
  extra: str | None = None  # the pip extra it needs (e.g. "eyelink" for EDF), None if none


class UnknownFormat(RecordingError):
  """No registered format recognises a file."""


def formats() -> dict[str, Format]:
  """Every registered format by name, in detection order."""
  found = {}
  for module in MODULES:
    mod = importlib.import_module(f"tfds_emer.trackers.{module}")
    for fmt in mod.FORMATS if hasattr(mod, "FORMATS") else (mod.FORMAT,):
      found[fmt.name] = fmt
  return found


def detect(path) -> Format:
  """The format of a file or folder, from its content; raises UnknownFormat naming the formats tried."""
  path = pathlib.Path(path)
  every = formats()
  for fmt in every.values():
    if fmt.detect(path):
      return fmt
  raise UnknownFormat(
    f"{path}: not a recording of any known eye-tracker format; tried "
    f"{', '.join(f'{f.name} ({f.description})' for f in every.values())}. Name its format in "
    'study.json ("formats"), or map its columns with the generic reader.'
  )


def read(path, format: str | None = None, options: dict | None = None) -> Recording:
  """A recording in the common schema: `format` names the reader; else options holding a column
  map (`"columns"`) choose the generic reader; else the format is detected."""
  path = pathlib.Path(path)
  every = formats()
  if format is None and "columns" in (options or {}) and "generic" in every:
    format = "generic"
  if format is None:
    fmt = detect(path)
  elif format in every:
    fmt = every[format]
  else:
    raise UnknownFormat(f"{path}: unknown format {format!r}; known formats: {sorted(every)}.")
  return fmt.read(path, dict(options or {}))
