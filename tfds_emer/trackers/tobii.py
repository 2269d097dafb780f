"""Tobii Pro Lab exports (`.tsv`, `.csv`, `.xlsx`) in the common schema.

The file is read by `tfds_emer.eye_export.read_export` (either header style, decimal commas,
other sensors' rows dropped, the authors' sheet-order rule for EMER's own exports); an export
that holds only some of the model's 39 columns is read for the fields it has. Then:
- `time_ms`: `Recording timestamp` (else `Eyetracker timestamp`) since the first row;
- gaze: `Gaze point X/Y (MCSnorm)` where the export has them (Pro Lab's media coordinates,
  the screen when the stimulus fills it), else `Gaze point X/Y` in pixels over
  `options["screen_px"]` (default `eye_export.SCREEN_PX`); fixation point in pixels likewise;
- pupils in mm; validity 1 (Valid) or 0; a pupil is NaN where its eye is invalid, the gaze
  where both are;
- event from `Eye movement type`: Fixation and Saccade as they are; `EyesNotFound` (Pro Lab's
  I-VT filter has no blink class) becomes BLINK where the stretch lasts at most
  `BLINK_MAX_MS`, else UNKNOWN (tracking loss, looking away); `Unclassified` is UNKNOWN;
- `reference`: the 39 columns as the EMER build stores them, where the export holds all 39.
"""

import pathlib

import numpy as np

from tfds_emer import eye_export
from tfds_emer.eye_columns import split_header
from tfds_emer.trackers import schema
from tfds_emer.trackers.registry import Format

BLINK_MAX_MS = 500.0
SUFFIXES = (".tsv", ".csv", ".txt", ".xlsx")
# Pro Lab's own column names (without units); detection needs the gaze and two of the rest.
_GAZE = {"gaze point x", "gaze point y"}
_PROLAB = {
  "recording timestamp",
  "eyetracker timestamp",
  "computer timestamp",
  "sensor",
  "participant name",
  "recording name",
  "validity left",
  "validity right",
  "pupil diameter left",
  "pupil diameter right",
  "eye movement type",
  "eye movement type index",
  "fixation point x",
}


def _header_cells(path: pathlib.Path) -> list[str]:
  """The export's header row: the first line of a text export, the first row of a workbook."""
  if path.suffix.lower() == ".xlsx":
    import python_calamine  # noqa: PLC0415 - only workbooks need it

    sheet = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    return [str(c) for c in next(iter(sheet.iter_rows()), [])]
  with open(path, encoding="utf-8-sig", errors="replace") as f:
    first = f.readline(1 << 16).rstrip("\r\n")
  return first.split(max(("\t", ";", ","), key=first.count))


def detect(path) -> bool:
  """Whether `path` is a file whose header row holds Pro Lab's gaze columns and two more of
  its column names."""
  path = pathlib.Path(path)
  if not path.is_file() or path.suffix.lower() not in SUFFIXES:
    return False
  try:
    bases = {split_header(h.strip().strip('"'))[0] for h in _header_cells(path)}
  except Exception:  # noqa: BLE001 - a file that cannot be read as one is not this format
    return False
  return _GAZE <= bases and len(bases & _PROLAB) >= 2


def _blinks(code: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
  """Rows of EyesNotFound stretches lasting at most BLINK_MAX_MS (to the next row's time)."""
  lost = code == eye_export.EYES_NOT_FOUND
  edges = np.flatnonzero(np.diff(np.r_[0, lost.astype(np.int8), 0]))
  step = np.nanmedian(np.diff(time_ms)) if len(time_ms) > 1 else np.nan
  ends = np.r_[time_ms, time_ms[-1] + step] if len(time_ms) else time_ms
  out = np.zeros(len(code), bool)
  for start, stop in zip(edges[::2], edges[1::2], strict=True):
    if ends[stop] - ends[start] <= BLINK_MAX_MS:  # NaN times compare False: not a blink
      out[start:stop] = True
  return out


def read(path, options: dict) -> schema.Recording:
  path = pathlib.Path(path)
  try:
    export = eye_export.read_export(path, options, complete=False)
  except eye_export.ExportError as e:
    raise schema.RecordingError(str(e)) from e
  col = export.column
  values = schema.empty(len(export.values))

  def put(field, cells):
    if cells is not None:
      values[:, schema.INDEX[field]] = cells

  w, h = options.get("screen_px", eye_export.SCREEN_PX)
  notes = []
  clock = export.clock_ms()
  if clock is not None and np.isfinite(clock).any():
    put("time_ms", clock - clock[np.isfinite(clock)][0])
  else:
    notes.append("no clock column: time_ms not measured")
  norm = [col(f"Gaze point {a} (MCSnorm)") for a in "XY"]
  if all(c is not None and np.isfinite(c).any() for c in norm):
    gaze, unit = norm, "MCS norm"
  else:
    gaze = [export.values[:, j] / size for j, size in zip(export.gaze_cols, (w, h), strict=True)]
    unit = f"px / {w}×{h}"
  valid = {}
  for side in ("left", "right"):
    v = col(f"Validity {side}")
    valid[side] = None if v is None else np.where(np.isnan(v), np.nan, (v > 0).astype(float))
    put(f"valid_{side}", valid[side])
    pupil = col(f"Pupil diameter {side}")
    if pupil is not None:
      put(f"pupil_{side}", pupil if v is None else np.where(v > 0, pupil, np.nan))
  if valid["left"] is not None and valid["right"] is not None:
    lost = (valid["left"] == 0) & (valid["right"] == 0)
    gaze = [np.where(lost, np.nan, g) for g in gaze]
  put("gaze_x", gaze[0])
  put("gaze_y", gaze[1])
  code = col("Eye movement type code")
  if code is not None:
    event = np.where(np.isnan(code), np.nan, schema.UNKNOWN)
    event[code == eye_export.FIXATION] = schema.FIXATION
    event[code == eye_export.SACCADE] = schema.SACCADE
    event[_blinks(code, values[:, schema.INDEX["time_ms"]])] = schema.BLINK
    put("event", event)
  put("event_duration_ms", col("Gaze event duration"))
  fix = [col(f"Fixation point {a}") for a in "XY"]
  put("fixation_x", None if fix[0] is None else fix[0] / w)
  put("fixation_y", None if fix[1] is None else fix[1] / h)
  if export.rule == "sheet order":
    notes.append("read in sheet order (the authors' rule): fields found by header name")
  missing = [c for c, header in zip(eye_export.COLUMNS, export.headers, strict=True) if not header]
  if missing:
    notes.append(f"columns not in the export: {missing}; no reference (39 columns)")
  return schema.Recording(
    values=values,
    format=FORMAT.name,
    source=str(path),
    units={"time": "ms", "gaze": unit, "pupil": "mm", "event_duration": "ms"},
    notes=tuple(notes),
    reference=None if missing else export.values,
  )


FORMAT = Format("tobii", "Tobii Pro Lab export (.tsv/.csv/.xlsx)", detect, read)
