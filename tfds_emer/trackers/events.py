"""Fixations and saccades for recordings whose tracker exports no events: pymovements' I-VT.

Asked for with the option `"detect_events": "ivt"` (pip extra `events`). Gaze, as a fraction of
the screen, becomes degrees of visual angle from `screen_px`, `screen_cm` (the screen's width
and height in cm) and `distance_cm` (eye to screen); velocities come from neighbouring rows;
rows below the velocity threshold for at least the minimum duration are fixations (centre: the
mean gaze), the other rows with gaze are saccades (Salvucci & Goldberg's I-VT). Thresholds
default to pymovements' (20 °/s, 100 ms); `"ivt": {"velocity_threshold": 30,
"minimum_duration": 60}` changes them.
"""

import numpy as np

from tfds_emer.trackers.schema import FIXATION, INDEX, SACCADE, UNKNOWN, RecordingError

METHODS = ("ivt",)
_IVT_KEYS = ("velocity_threshold", "minimum_duration")


def run_durations(time_ms: np.ndarray, event: np.ndarray, ids=None) -> np.ndarray:
  """Per row, the time from the first to the last row of its event: a run of consecutive rows
  with the same event (and the same event id, where `ids` is given); NaN where UNKNOWN."""
  n = len(event)
  out = np.full(n, np.nan)
  if n == 0:
    return out
  key = np.nan_to_num(event, nan=-1.0)
  same = key[1:] == key[:-1]
  if ids is not None:
    same &= np.nan_to_num(ids[1:], nan=-1.0) == np.nan_to_num(ids[:-1], nan=-1.0)
  starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
  ends = np.concatenate([starts[1:], [n]])
  for a, b in zip(starts, ends, strict=True):
    if key[a] not in (UNKNOWN, -1.0):
      out[a:b] = time_ms[b - 1] - time_ms[a]
  return out


def _geometry(options: dict, path):
  missing = [k for k in ("screen_px", "screen_cm", "distance_cm") if k not in options]
  if missing:
    raise RecordingError(
      f"{path}: detect_events 'ivt' needs {', '.join(missing)} in the options (screen size in "
      "pixels, screen width and height in cm, eye-to-screen distance in cm)."
    )
  try:
    px = tuple(float(v) for v in options["screen_px"])
    cm = tuple(float(v) for v in options["screen_cm"])
    distance = float(options["distance_cm"])
  except (TypeError, ValueError):
    raise RecordingError(
      f"{path}: detect_events 'ivt': screen_px and screen_cm must be [width, height] and "
      f"distance_cm a number; got {options['screen_px']!r}, {options['screen_cm']!r}, "
      f"{options['distance_cm']!r}."
    ) from None
  return px, cm, distance


def detect(values: np.ndarray, options: dict, path, rate_hz: float) -> np.ndarray:
  """`values` with I-VT fixations and saccades in `event`, `event_duration_ms`, `fixation_x/y`."""
  method = options.get("detect_events")
  if method not in METHODS:
    raise RecordingError(f"{path}: detect_events {method!r}: expected one of {list(METHODS)}.")
  params = dict(options.get("ivt", {}))
  unknown = sorted(set(params) - set(_IVT_KEYS))
  if unknown:
    raise RecordingError(f"{path}: ivt options {unknown}: expected some of {list(_IVT_KEYS)}.")
  px, cm, distance = _geometry(options, path)
  try:
    from pymovements.events import ivt  # noqa: PLC0415 - optional extra
    from pymovements.transforms.numpy import pix2deg, pos2vel  # noqa: PLC0415
  except ImportError:
    raise RecordingError(
      f"{path}: detect_events 'ivt' needs pymovements: pip install -e '.[events]'."
    ) from None
  gaze = values[:, [INDEX["gaze_x"], INDEX["gaze_y"]]]
  time_ms = values[:, INDEX["time_ms"]]
  if len(values) < 3 or not rate_hz > 0 or not np.isfinite(time_ms).all():
    raise RecordingError(
      f"{path}: detect_events 'ivt' needs at least 3 rows with increasing times."
    )
  degrees = pix2deg(gaze * np.array(px), px, cm, distance, origin="upper left")
  velocity = pos2vel(degrees, sampling_rate=rate_hz, method="neighbors")
  steps = np.round(time_ms).astype(np.int64)
  found = ivt(velocity, timesteps=steps, **params).frame
  out = values.copy()
  has_gaze = np.isfinite(gaze).all(axis=1)
  event = np.where(has_gaze, float(SACCADE), out[:, INDEX["event"]])
  duration = np.full(len(out), np.nan)
  fix_x, fix_y = np.full(len(out), np.nan), np.full(len(out), np.nan)
  for onset, offset in zip(found["onset"].to_list(), found["offset"].to_list(), strict=True):
    rows = (steps >= onset) & (steps <= offset)
    event[rows] = FIXATION
    duration[rows] = float(offset - onset)
    fix_x[rows] = np.nanmean(gaze[rows, 0])
    fix_y[rows] = np.nanmean(gaze[rows, 1])
  out[:, INDEX["event"]] = event
  out[:, INDEX["fixation_x"]] = fix_x
  out[:, INDEX["fixation_y"]] = fix_y
  saccade = event == SACCADE
  duration[saccade] = run_durations(time_ms, event)[saccade]
  out[:, INDEX["event_duration_ms"]] = duration
  return out
