"""iMotions sensor-data exports (`.csv` from iMotions 8-10, tab-separated `.txt` from 6-7).

Leading lines whose first cell starts with `#` are metadata (`#INFO`, `#Study name`,
`#Respondent Name`, `#Sensor info`, the `#METADATA` block, `#DATA`); the first other line is
the header. Rows of every sensor of the study are interleaved; the eye tracker's rows are the
ones with a cell in an eye column below (other sensors' rows leave them empty), and rows at the
same `Timestamp` are merged (iMotions writes the gaze-analysis results, `Fixation X`..., on
rows of their own). Column names by generation (case, spaces and underscores ignored):
- gaze: `Gaze X`/`GazeX`, else (row by row) the mean of the eyes' `GazeLeftx`/`GazeRightx`
  (`ET_` prefix in iMotions 8+); pixels → fraction of the screen by `screen_px` (the option,
  else a metadata line naming a resolution, e.g. `#Screen resolution,1920 x 1080`);
- pupils: `PupilLeft`/`PupilRight` (mm); validity: `ValidityLeft`/`ValidityRight`, Tobii codes
  0 (eye found) ... 4 (not found): 0-1 valid, 2-4 invalid; without them, an eye is valid
  where it has gaze;
- events: `FixationSeq`/`SaccadeSeq` (index, -1 outside) or `Fixation Index`/`Saccade Index`
  (empty outside), `Blink` (1, or the blink's index); centre `FixationX`/`Fixation X` (px);
  duration `FixationDuration`/`Fixation Duration`/`Saccade Duration` (ms), else from the
  event's first to last row.
-1 and empty cells are missing.
"""

import pathlib
import re

import numpy as np
import pandas as pd

from tfds_emer.eye_export import read_table
from tfds_emer.trackers import registry
from tfds_emer.trackers.events import run_durations
from tfds_emer.trackers.schema import (
  BLINK,
  FIXATION,
  INDEX,
  SACCADE,
  UNKNOWN,
  RecordingError,
  empty,
)
from tfds_emer.trackers.text_columns import column, find, finish, relative_ms, screen_size

NAME = "imotions"
_P = ("", "ET_")  # iMotions 8+ prefixes the eye tracker's own columns with ET_
NAMES = {
  "time": ("Timestamp",),
  "gaze_x": ("Gaze X", "GazeX", "ET_GazeX"),
  "gaze_y": ("Gaze Y", "GazeY", "ET_GazeY"),
  "left_x": tuple(p + "GazeLeftx" for p in _P),
  "left_y": tuple(p + "GazeLefty" for p in _P),
  "right_x": tuple(p + "GazeRightx" for p in _P),
  "right_y": tuple(p + "GazeRighty" for p in _P),
  "pupil_left": tuple(p + "PupilLeft" for p in _P),
  "pupil_right": tuple(p + "PupilRight" for p in _P),
  "valid_left": tuple(p + "ValidityLeft" for p in _P),
  "valid_right": tuple(p + "ValidityRight" for p in _P),
  "fixation": ("Fixation Index", "FixationSeq", "ET_FixationSeq"),
  "saccade": ("Saccade Index", "SaccadeSeq", "ET_SaccadeSeq"),
  "blink": ("Blink", "ET_Blink", "Blink Index"),
  "fixation_x": ("Fixation X", "FixationX", "ET_FixationX"),
  "fixation_y": ("Fixation Y", "FixationY", "ET_FixationY"),
  "fixation_ms": ("Fixation Duration", "FixationDuration", "ET_FixationDuration"),
  "saccade_ms": ("Saccade Duration", "SaccadeDuration", "ET_SaccadeDuration"),
}
_EYE = [k for k in NAMES if k != "time"]
_PIXELS = ("gaze_x", "gaze_y", "left_x", "left_y", "right_x", "right_y", "fixation_x", "fixation_y")
_SOURCE = ("EventSource", "Event Source", "Combined Event Source")
_MARKERS = ("#study name", "#respondent name", "#info", "#metadata", "#data", "#sensor info")
VALID_CODES_MAX = 1  # Tobii validity codes 0 and 1: the eye was found


def _preamble(path: pathlib.Path, limit: int | None = None):
  """(metadata rows as cell lists, the header line's index, the header line) or None."""
  meta = []
  with open(path, encoding="utf-8-sig") as f:
    for i, line in enumerate(f):
      if limit is not None and i >= limit:
        return None
      if not line.strip():
        continue
      sep = max(("\t", ";", ","), key=line.count)
      cells = [c.strip().strip('"') for c in line.rstrip("\r\n").split(sep)]
      if cells[0].startswith("#"):
        meta.append(cells)
        continue
      return meta, i, line
  return None


def detect(path: pathlib.Path) -> bool:
  """A header with a Timestamp after iMotions metadata lines, or with an EventSource column."""
  path = pathlib.Path(path)
  if not path.is_file():
    return False
  try:
    found = _preamble(path, limit=500)
  except (OSError, UnicodeDecodeError):
    return False
  if found is None:
    return False
  meta, _, line = found
  sep = max(("\t", ";", ","), key=line.count)
  headers = [c.strip().strip('"') for c in line.split(sep)]
  if find(headers, *NAMES["time"]) is None:
    return False
  marked = any(m[0].lower() in _MARKERS for m in meta)
  return marked or find(headers, *_SOURCE) is not None


def _metadata_screen(meta) -> tuple[float, float] | None:
  for cells in meta:
    if "resolution" in cells[0].lower() or "screen" in cells[0].lower():
      for cell in cells[1:]:
        m = re.fullmatch(r"\s*(\d+)\s*[x×*]\s*(\d+)\s*", cell)
        if m:
          return float(m.group(1)), float(m.group(2))
  return None


def _number(cell: str) -> bool:
  try:
    float(cell)
  except ValueError:
    return not cell.strip()
  return True


def _sensors(table: pd.DataFrame, meta) -> list[str]:
  """The sensors an export names: its EventSource values and `#Sensor info` lines."""
  found = set()
  for h in table.columns:
    if find([h], *_SOURCE) or str(h).split(".")[0].strip().lower() == "eventsource":
      for cell in table[h].dropna().astype(str):
        found.update(s.strip() for s in cell.split("|") if not _number(s))
  found.update(c[1] for c in meta if c[0].lower() == "#sensor info" and len(c) > 1 and c[1])
  return sorted(found)


def read(path, options: dict):
  path = pathlib.Path(path)
  try:
    found = _preamble(path)
    if found is not None:
      table, decimal_comma = read_table(path, skiprows=found[1])
  except Exception as e:  # noqa: BLE001 - a corrupt file of any kind is one defect
    raise RecordingError(f"{path}: unreadable iMotions export ({type(e).__name__}: {e}).") from e
  if found is None:
    raise RecordingError(f"{path}: no header line after the iMotions metadata.")
  meta, skip, _ = found
  headers = list(table.columns)
  cols = {k: find(headers, *names) for k, names in NAMES.items()}
  if cols["time"] is None:
    raise RecordingError(f"{path}: no 'Timestamp' column among {[str(h) for h in headers]}.")
  present = [cols[k] for k in _EYE if cols[k] is not None]
  cells = table[present].apply(lambda c: c.astype(str).str.strip().ne("") & c.notna())
  eye_rows = cells.any(axis=1).to_numpy() if present else np.zeros(len(table), bool)
  if not eye_rows.any():
    sensors = _sensors(table, meta)
    raise RecordingError(
      f"{path}: no eye-tracker rows; the export holds "
      f"{'rows of ' + ', '.join(sensors) if sensors else 'no sensor names'} and no gaze in "
      f"columns such as {', '.join(NAMES['left_x'] + NAMES['gaze_x'][:1])}."
    )
  table = table[eye_rows]
  raw = {
    k: column(table, h, path, decimal_comma, missing=(-1,), skip=skip) for k, h in cols.items() if h
  }
  raw = _merged(raw)
  screen = screen_size(options, path, _metadata_screen(meta))
  if screen is None and any(k in raw for k in _PIXELS):
    raise RecordingError(
      f'{path}: gaze is in pixels and the screen size is unknown; give "screen_px": '
      "[width, height] in study.json."
    )
  for k in _PIXELS:
    if k in raw:
      raw[k] = raw[k] / screen[0 if k.endswith("x") else 1]
  return finish(_values(raw, path), NAME, path, options, {"pupil": "mm"})


def _merged(raw: dict) -> dict:
  """Rows with the same Timestamp merged into one: per column its first cell with a value."""
  frame = pd.DataFrame(raw)
  if frame["time"].isna().any() or not frame["time"].duplicated().any():
    return raw
  merged = frame.groupby("time", sort=False).first().reset_index()
  return {k: merged[k].to_numpy(np.float64) for k in raw}


def _mean_eyes(a, b):
  if a is None or b is None:
    return a if b is None else b
  both = np.stack([a, b])
  count = np.isfinite(both).sum(axis=0)
  return np.where(count > 0, np.nansum(both, axis=0) / np.maximum(count, 1), np.nan)


def _values(raw: dict, path) -> np.ndarray:
  values = empty(len(raw["time"]))
  time_ms = relative_ms(raw["time"], "ms", path, "Timestamp")
  values[:, INDEX["time_ms"]] = time_ms
  for axis in ("x", "y"):
    gaze = raw.get(f"gaze_{axis}")
    eyes = _mean_eyes(raw.get(f"left_{axis}"), raw.get(f"right_{axis}"))
    if gaze is None:
      gaze = eyes
    elif eyes is not None:
      gaze = np.where(np.isfinite(gaze), gaze, eyes)
    if gaze is not None:
      values[:, INDEX[f"gaze_{axis}"]] = gaze
    if f"fixation_{axis}" in raw:
      values[:, INDEX[f"fixation_{axis}"]] = raw[f"fixation_{axis}"]
  for eye in ("left", "right"):
    if f"pupil_{eye}" in raw:
      values[:, INDEX[f"pupil_{eye}"]] = raw[f"pupil_{eye}"]
    code = raw.get(f"valid_{eye}")
    if code is not None:
      valid = (code <= VALID_CODES_MAX).astype(float)
      values[:, INDEX[f"valid_{eye}"]] = np.where(np.isnan(code), np.nan, valid)
    elif f"{eye}_x" in raw:
      values[:, INDEX[f"valid_{eye}"]] = np.isfinite(raw[f"{eye}_x"]).astype(float)
  if not any(k in raw for k in ("fixation", "saccade", "blink")):
    return values
  event = np.full(len(values), float(UNKNOWN))
  ids = np.full(len(values), np.nan)
  given = np.full(len(values), np.nan)
  for key, code, ms in (("saccade", SACCADE, "saccade_ms"), ("fixation", FIXATION, "fixation_ms")):
    if key in raw:
      on = np.isfinite(raw[key]) & (raw[key] >= 0)
      event[on], ids[on] = code, raw[key][on]
      if ms in raw:
        given[on] = raw[ms][on]
  if "blink" in raw:
    on = np.isfinite(raw["blink"]) & (raw["blink"] > 0)
    event[on], ids[on], given[on] = BLINK, raw["blink"][on], np.nan
  values[:, INDEX["event"]] = event
  spans = run_durations(time_ms, event, ids)
  values[:, INDEX["event_duration_ms"]] = np.where(np.isfinite(given), given, spans)
  return values


FORMAT = registry.Format(
  name=NAME,
  description="iMotions sensor-data export CSV/TXT",
  detect=detect,
  read=read,
)
