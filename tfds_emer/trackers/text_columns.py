"""What the text-table readers (iMotions, Gazepoint, generic) share: a header found among a
format's names, a column as numbers, times from the first row, the screen size, the Recording."""

import pathlib
import re

import numpy as np
import pandas as pd

from tfds_emer.eye_export import ExportError, numbers
from tfds_emer.trackers import events
from tfds_emer.trackers.schema import INDEX, UNKNOWN, Recording, RecordingError

# Seconds per unit of a time column.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _key(header) -> str:
  return re.sub(r"[\s_]", "", str(header)).lower()


def find(headers, *names) -> str | None:
  """The first header equal to one of `names` (case, spaces and underscores ignored)."""
  keys = {}
  for h in headers:
    keys.setdefault(_key(h), h)
  return next((keys[_key(n)] for n in names if _key(n) in keys), None)


def column(
  table: pd.DataFrame, header, path, decimal_comma: bool, missing=(), codes=None, skip: int = 0
) -> np.ndarray:
  """A column as float64: empty cells and the `missing` sentinels (e.g. -1) NaN; a cell that is
  not a number (nor one of `codes`) raises RecordingError naming the file, column and line (the
  table read after `skip` lines)."""
  cells = table[header]
  try:
    out = numbers(cells.set_axis(cells.index + skip), path, header, decimal_comma, codes)
  except ExportError as e:
    raise RecordingError(str(e)) from None
  for value in missing:
    out[out == value] = np.nan
  return out


def relative_ms(t: np.ndarray, unit: str, path, header) -> np.ndarray:
  """Times in `unit` as milliseconds since the first row with a time."""
  if unit not in TIME_UNITS:
    raise RecordingError(
      f"{path}: time unit {unit!r} of column {header!r}: expected one of {list(TIME_UNITS)}."
    )
  finite = np.flatnonzero(np.isfinite(t))
  if not len(finite):
    raise RecordingError(f"{path}: column {header!r} holds no time.")
  # Differences first: large clock values keep their sub-millisecond steps.
  return (t - t[finite[0]]) * (TIME_UNITS[unit] * 1e3)


def to_fraction(values: np.ndarray, screen_px, axis: int) -> np.ndarray:
  """Pixels on the screen's `axis` (0 x, 1 y) as a fraction of the screen."""
  return values / float(screen_px[axis])


def screen_size(options: dict, path, found=None) -> tuple[float, float] | None:
  """options["screen_px"] (else `found`) as (width, height); None when neither is given."""
  size = options.get("screen_px", found)
  if size is None:
    return None
  try:
    w, h = (float(v) for v in size)
  except (TypeError, ValueError):
    raise RecordingError(
      f"{path}: screen_px {size!r}: expected [width, height] in pixels, e.g. [1920, 1080]."
    ) from None
  if not (w > 0 and h > 0):
    raise RecordingError(f"{path}: screen_px {size!r}: width and height must be positive.")
  return w, h


def finish(values, name: str, path, options: dict, units=None, notes=()) -> Recording:
  """The reader's Recording; events detected first where `options` ask and the tracker has none."""
  notes = list(notes)
  if options.get("detect_events"):
    if has_events(values):
      notes.append(
        f"the tracker's own events kept; detect_events {options['detect_events']!r} unused"
      )
    else:
      t = values[:, INDEX["time_ms"]]
      steps = np.diff(t[np.isfinite(t)])
      rate = 1000.0 / float(np.median(steps)) if len(steps) and np.median(steps) > 0 else 0.0
      values = events.detect(values, options, path, rate)
      notes.append(f"events detected by pymovements ({options['detect_events']})")
  return Recording(
    values=values,
    format=name,
    source=str(pathlib.Path(path)),
    units=dict(units or {}),
    notes=tuple(notes),
  )


def has_events(values: np.ndarray) -> bool:
  event = values[:, INDEX["event"]]
  return bool((np.isfinite(event) & (event != UNKNOWN)).any())
