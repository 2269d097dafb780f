"""Events given as time spans (a tracker's fixation, saccade and blink lists) painted onto rows."""

import numpy as np

from tfds_emer.trackers.schema import FIXATION, INDEX, UNKNOWN


def paint(values, kind, start_ms, end_ms, duration_ms, x=None, y=None) -> None:
  """Marks every row with start <= time_ms <= end as event `kind` in place, with the event's
  duration and, for fixations, its centre (`x`, `y` as fractions of the screen). Later calls
  win where spans overlap; rows no span covers become UNKNOWN once any span list is painted."""
  time = values[:, INDEX["time_ms"]]
  event = values[:, INDEX["event"]]
  event[np.isnan(event)] = UNKNOWN
  start_ms, end_ms, duration_ms = (
    np.asarray(a, dtype=float) for a in (start_ms, end_ms, duration_ms)
  )
  no_centre = np.full(len(start_ms), np.nan)
  x = no_centre if x is None else np.asarray(x, dtype=float)
  y = no_centre if y is None else np.asarray(y, dtype=float)
  order = np.argsort(time, kind="stable")
  sorted_time = time[order]
  first = np.searchsorted(sorted_time, start_ms, side="left")
  last = np.searchsorted(sorted_time, end_ms, side="right")
  for j in range(len(start_ms)):
    rows = order[first[j] : last[j]]
    if not len(rows):
      continue
    values[rows, INDEX["event"]] = kind
    values[rows, INDEX["event_duration_ms"]] = duration_ms[j]
    centre = (x[j], y[j]) if kind == FIXATION else (np.nan, np.nan)
    values[rows, INDEX["fixation_x"]], values[rows, INDEX["fixation_y"]] = centre
