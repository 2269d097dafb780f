"""EyeLink samples and events (from an ASC or an EDF file) in the common schema."""

import dataclasses
import warnings

import numpy as np

from tfds_emer.trackers import spans
from tfds_emer.trackers.schema import (
  BLINK,
  FIXATION,
  INDEX,
  SACCADE,
  Recording,
  RecordingError,
  empty,
)

KINDS = {"FIX": FIXATION, "SACC": SACCADE, "BLINK": BLINK}
PAINT_ORDER = (FIXATION, SACCADE, BLINK)  # within an eye, a blink wins over the saccade around it


@dataclasses.dataclass
class Parsed:
  """What a reader found, in the tracker's own clock (ms) and screen pixels."""

  time: np.ndarray  # (rows,)
  # "left"/"right" -> (rows, 3) x, y, pupil; NaN where missing; an eye never recorded is absent
  eyes: dict
  events: list  # (kind, eye "L"/"R", start, end, duration, x, y); x, y only for fixations
  screen: tuple | None  # (left, top, width, height) in px, from GAZE_COORDS/DISPLAY_COORDS
  pupil: str | None  # "AREA" or "DIAMETER"
  has_events: bool  # the file holds an event stream (even if empty)


def screen_from(path, parsed: Parsed, options: dict) -> tuple:
  if parsed.screen is not None:
    return parsed.screen
  size = options.get("screen_px")
  if size is None:
    raise RecordingError(
      f"{path}: no GAZE_COORDS or DISPLAY_COORDS message gives the screen size; set "
      '"screen_px": [width, height] in study.json'
    )
  try:
    width, height = (float(v) for v in size)
  except (TypeError, ValueError):
    raise RecordingError(
      f"{path}: screen_px must be [width, height] in pixels, got {size!r}"
    ) from None
  return 0.0, 0.0, width, height


def recording(path, parsed: Parsed, options: dict, format: str) -> Recording:
  """The parsed samples as a Recording: gaze is the mean of the eyes found on a row, each eye
  valid where it has a gaze point, pupil 0 (EyeLink's 'no pupil') is NaN."""
  if not len(parsed.time):
    raise RecordingError(f"{path}: no samples (was it converted with edf2asc -ne or -e?)")
  left, top, width, height = screen_from(path, parsed, options)
  values = empty(len(parsed.time))
  t0 = parsed.time[0]
  values[:, INDEX["time_ms"]] = parsed.time - t0
  xs, ys = [], []
  for eye, block in parsed.eyes.items():
    x = (block[:, 0] - left) / width
    y = (block[:, 1] - top) / height
    found = np.isfinite(x) & np.isfinite(y)
    values[:, INDEX[f"valid_{eye}"]] = found
    pupil = np.where(block[:, 2] > 0, block[:, 2], np.nan)
    values[:, INDEX[f"pupil_{eye}"]] = pupil
    xs.append(np.where(found, x, np.nan))
    ys.append(np.where(found, y, np.nan))
  with warnings.catch_warnings():  # a row where both eyes are lost is all-NaN
    warnings.simplefilter("ignore", RuntimeWarning)
    values[:, INDEX["gaze_x"]] = np.nanmean(xs, axis=0)
    values[:, INDEX["gaze_y"]] = np.nanmean(ys, axis=0)
  if parsed.has_events:
    # One eye's events at a time, the eye found on more rows last so that it wins overlaps.
    tracked = {e[0].upper(): np.nansum(values[:, INDEX[f"valid_{e}"]]) for e in parsed.eyes}
    for eye in sorted(tracked, key=tracked.get):
      for kind in PAINT_ORDER:
        chosen = [e for e in parsed.events if e[0] == kind and e[1] == eye]
        if chosen:
          start, end, duration, x, y = np.array([c[2:] for c in chosen], dtype=float).T
          spans.paint(
            values, kind, start - t0, end - t0, duration, (x - left) / width, (y - top) / height
          )
    spans.paint(values, FIXATION, [], [], [])  # rows no event covers: UNKNOWN
  unit = {
    "AREA": "EyeLink pupil area (arbitrary units)",
    "DIAMETER": "EyeLink pupil diameter (arbitrary units)",
  }
  notes = [f"screen {width:g}x{height:g} px"]
  if len(parsed.eyes) == 2:
    notes.append(
      "binocular: gaze is the mean of the eyes found; where the eyes' events overlap, those of "
      "the eye found on more rows"
    )
  return Recording(
    values=values,
    format=format,
    source=str(path),
    units={"pupil": unit.get(parsed.pupil, "EyeLink pupil (arbitrary units)")},
    notes=tuple(notes),
  )
