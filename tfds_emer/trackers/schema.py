"""The tracker-independent eye schema that every eye-tracker reader fills.

A `Recording` holds one recording's rows in `FIELDS` order:
- `time_ms`: time since the recording's first row, in milliseconds;
- `gaze_x`, `gaze_y`: the gaze point as a fraction of the screen (0 left/top, 1 right/bottom;
  off-screen gaze may fall outside [0, 1]);
- `pupil_left`, `pupil_right`: pupil diameter in millimetres where the tracker gives it, else in
  the tracker's own unit (`Recording.units` says which);
- `valid_left`, `valid_right`: 1 where the tracker found that eye on the row, else 0;
- `event`: `UNKNOWN`, `FIXATION`, `SACCADE` or `BLINK`; `event_duration_ms`: the duration of the
  event the row belongs to;
- `fixation_x`, `fixation_y`: the current fixation's centre as a fraction of the screen.

A cell the tracker did not measure on that row is NaN; a field the tracker never measures is
NaN throughout and `measured` says so. `filled` turns a recording into the model's rows: NaN
cells interpolated in time, beside one flag per field saying whether the cell was measured.
"""

import dataclasses

import numpy as np

from tfds_emer.eye_export import fill_invalid

FIELDS = (
  "time_ms",
  "gaze_x",
  "gaze_y",
  "pupil_left",
  "pupil_right",
  "valid_left",
  "valid_right",
  "event",
  "event_duration_ms",
  "fixation_x",
  "fixation_y",
)
INDEX = {name: j for j, name in enumerate(FIELDS)}
WIDTH = len(FIELDS)
# The columns of `filled`: the fields, then whether each cell was measured.
COLUMNS = FIELDS + tuple(f"measured_{name}" for name in FIELDS)
CLOCK = "time_ms"  # the one clock column: time since the recording's first row
UNKNOWN, FIXATION, SACCADE, BLINK = 0, 1, 2, 3
EVENTS = {"unknown": UNKNOWN, "fixation": FIXATION, "saccade": SACCADE, "blink": BLINK}


class RecordingError(ValueError):
  """A recording cannot be read; the message names the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class Recording:
  """One eye-tracker recording in the common schema."""

  values: np.ndarray  # float64 (rows, WIDTH) in FIELDS order; NaN where not measured
  format: str  # the reader's name in the registry
  source: str  # the file or folder read
  units: dict = dataclasses.field(default_factory=dict)  # e.g. {"pupil": "mm"}
  notes: tuple[str, ...] = ()  # what the reader did that a user should know
  # The reference's 39 columns (tfds_emer.eye_export.COLUMNS), for exports that hold them.
  reference: np.ndarray | None = None

  @property
  def measured(self) -> tuple[bool, ...]:
    """Per field: whether any row holds a measurement."""
    return tuple(bool(v) for v in np.isfinite(self.values).any(axis=0))

  @property
  def rows(self) -> int:
    return len(self.values)

  def column(self, name: str) -> np.ndarray:
    return self.values[:, INDEX[name]]

  @property
  def duration_ms(self) -> float:
    t = self.column("time_ms")
    return float(np.nanmax(t) - np.nanmin(t)) if np.isfinite(t).any() else 0.0

  @property
  def rate_hz(self) -> float:
    t = self.column("time_ms")
    steps = np.diff(t[np.isfinite(t)])
    return float(1000.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 0.0

  @property
  def valid_share(self) -> float:
    """Share of rows with a gaze point."""
    ok = np.isfinite(self.values[:, [INDEX["gaze_x"], INDEX["gaze_y"]]]).all(axis=1)
    return float(ok.mean()) if len(ok) else 0.0


def empty(rows: int) -> np.ndarray:
  """A (rows, WIDTH) table of NaN for a reader to fill."""
  return np.full((rows, WIDTH), np.nan)


def filled(recording: Recording) -> np.ndarray:
  """float32 (rows, 2 * WIDTH): the fields with NaN cells interpolated in time (a field never
  measured becomes 0), then one 0/1 flag per field saying whether the cell was measured."""
  values = recording.values
  return np.concatenate(
    [fill_invalid(values), np.isfinite(values).astype(np.float32)], axis=1
  ).astype(np.float32)
