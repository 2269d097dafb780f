"""The Tobii-like eye-movement export: its 39 numeric columns, invalid rows, fixation maps."""

import cv2
import numpy as np

COLUMNS = (
  "Recording timestamp",
  "Eyetracker timestamp",
  "Gaze point X",
  "Gaze point Y",
  "Gaze point left X",
  "Gaze point left Y",
  "Gaze point right X",
  "Gaze point right Y",
  "Gaze direction left X",
  "Gaze direction left Y",
  "Gaze direction left Z",
  "Gaze direction right X",
  "Gaze direction right Y",
  "Gaze direction right Z",
  "Pupil diameter left",
  "Pupil diameter right",
  "Validity left",
  "Validity right",
  "Eye position left X (DACSmm)",
  "Eye position left Y (DACSmm)",
  "Eye position left Z (DACSmm)",
  "Eye position right X (DACSmm)",
  "Eye position right Y (DACSmm)",
  "Eye position right Z (DACSmm)",
  "Gaze point left X (DACSmm)",
  "Gaze point left Y (DACSmm)",
  "Gaze point right X (DACSmm)",
  "Gaze point right Y (DACSmm)",
  "Gaze point X (MCSnorm)",
  "Gaze point Y (MCSnorm)",
  "Gaze point left X (MCSnorm)",
  "Gaze point left Y (MCSnorm)",
  "Gaze point right X (MCSnorm)",
  "Gaze point right Y (MCSnorm)",
  "Eye movement type code",
  "Gaze event duration",
  "Eye movement type index",
  "Fixation point X",
  "Fixation point Y",
)
NUM_COLUMNS = len(COLUMNS)
GAZE_COLUMNS = ("Gaze point X", "Gaze point Y")
# Clocks: `Recording timestamp` counts from the start of the Tobii recording (which may span
# several stimuli of a session), `Eyetracker timestamp` is the device clock.
CLOCK_COLUMNS = ("Recording timestamp", "Eyetracker timestamp")
# Accepted spellings of the gaze columns, in order of preference.
GAZE_ALIASES = (GAZE_COLUMNS, ("Gaze point X [DACS px]", "Gaze point Y [DACS px]"))
# Values of "Eye movement type code".
UNCLASSIFIED, FIXATION, SACCADE, EYES_NOT_FOUND = 0, 1, 2, 3
SCREEN_PX = (1920, 1080)
MAP_SIZE = 64


def fill_invalid(values: np.ndarray) -> np.ndarray:
  """Fills NaN cells column by column by linear interpolation in time.

  Invalid rows (blinks, tracking loss, empty cells of event-specific columns) take values
  interpolated between the nearest valid rows of that column; leading and trailing stretches
  take the nearest valid value; a column with no valid cell becomes 0. The validity and
  movement-type columns, which are never empty, keep telling which rows were measured.
  """
  values = np.asarray(values, np.float64)
  out = values.copy()
  rows = np.arange(len(values))
  for j in range(values.shape[1]):
    ok = np.isfinite(values[:, j])
    if ok.all():
      continue
    out[:, j] = np.interp(rows, rows[ok], values[ok, j]) if ok.any() else 0.0
  return out.astype(np.float32)


def fixation_map(
  gaze: np.ndarray, timestamps_ms: np.ndarray, screen=SCREEN_PX, size=MAP_SIZE, sigma=2.0
) -> np.ndarray:
  """Duration-weighted gaze heatmap (size, size, 1) in [0, 1] over the screen.

  `gaze` may hold NaN rows (invalid samples); they add nothing. Each valid row adds the time
  until the next row, so fixations weigh by their duration.
  """
  dt = np.diff(np.asarray(timestamps_ms, np.float64), append=np.nan)
  dt[-1] = np.nanmedian(dt) if len(dt) > 1 else 1.0
  ok = np.isfinite(gaze).all(axis=1) & np.isfinite(dt)
  x = np.clip(gaze[ok, 0] / screen[0] * size, 0, size - 1e-3).astype(int)
  y = np.clip(gaze[ok, 1] / screen[1] * size, 0, size - 1e-3).astype(int)
  heat = np.zeros((size, size), np.float64)
  np.add.at(heat, (y, x), np.clip(dt[ok], 0, None))
  heat = cv2.GaussianBlur(heat, (0, 0), sigma)
  peak = heat.max()
  heat = heat / peak if peak > 0 else heat
  return heat.astype(np.float32)[..., None]
