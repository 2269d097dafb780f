"""Any other eye-tracker table (CSV, TSV, semicolon-separated, XLSX) through a column map.

Never detected from a file's content: `registry.read` picks it when its options hold a column
map (`"columns"`) and no format is named, or when `"format": "generic"` is named. Options
(from study.json):
- `columns`: schema field → the file's header, e.g. `{"time_ms": "t", "gaze_x": "x",
  "gaze_y": "y", "pupil_left": "pl", "event": "type"}`; `time_ms`, `gaze_x` and `gaze_y`
  are required, every other field of `schema.FIELDS` is optional (NaN when not mapped);
- `time_unit`: `s`, `ms` (default), `us` or `ns`, for the time and event-duration columns;
- `gaze_unit`: `fraction` (default) or `px` (then `screen_px`: [width, height]), for gaze and
  fixation columns;
- `pupil_unit`: recorded in `Recording.units` (default `mm`);
- `missing`: cell values meaning "not measured" (e.g. `[-1]`); empty cells always are;
- `event_codes`: a cell of the event column → `fixation`, `saccade`, `blink` or `unknown`
  (the four names themselves are understood without it);
- `valid_codes`: a text cell of a validity column → 1 or 0 (e.g. `{"Valid": 1, "Invalid": 0}`);
  numbers are read as they are (1 found, 0 not).
"""

import pathlib

import numpy as np
import pandas as pd

from tfds_emer.eye_export import read_table
from tfds_emer.trackers import registry
from tfds_emer.trackers.schema import EVENTS, FIELDS, INDEX, RecordingError, empty
from tfds_emer.trackers.text_columns import (
  TIME_UNITS,
  column,
  finish,
  relative_ms,
  screen_size,
)

NAME = "generic"
REQUIRED = ("time_ms", "gaze_x", "gaze_y")
_SCREEN = ("gaze_x", "gaze_y", "fixation_x", "fixation_y")
_UNITS = ("fraction", "px")


def detect(path: pathlib.Path) -> bool:
  """Always False: the generic reader is chosen by its column map, never by content."""
  return False


def _column_map(options: dict, path) -> dict:
  mapping = options.get("columns")
  if not isinstance(mapping, dict) or not mapping:
    raise RecordingError(
      f'{path}: the generic reader needs "columns": {{field: header}} in study.json, '
      f"with at least {list(REQUIRED)}; fields: {list(FIELDS)}."
    )
  unknown = sorted(set(mapping) - set(FIELDS))
  missing = [f for f in REQUIRED if f not in mapping]
  if unknown or missing:
    raise RecordingError(
      f"{path}: column map: unknown field(s) {unknown}, missing field(s) {missing}; "
      f"fields: {list(FIELDS)}."
    )
  return mapping


def _events(cells: pd.Series, path, header, codes: dict) -> np.ndarray:
  lookup = {name: code for name, code in EVENTS.items()}
  for cell, name in codes.items():
    if str(name).lower() not in EVENTS:
      raise RecordingError(f"{path}: event_codes {cell!r}: {name!r} is not one of {list(EVENTS)}.")
    lookup[str(cell).strip().lower()] = EVENTS[str(name).lower()]
  text = cells.reset_index(drop=True)
  out = np.full(len(text), np.nan)
  for i, cell in enumerate(text):
    if pd.isna(cell) or not str(cell).strip():
      continue
    key = str(cell).strip().lower()
    if key not in lookup:
      try:  # numeric codes written as 1.0 match a code "1"
        key = str(int(float(key)))
      except ValueError:
        pass
    if key not in lookup:
      raise RecordingError(
        f"{path}: column {header!r} row {i + 2}: event {cell!r} is not one of "
        f'{sorted(lookup)}; map it in "event_codes".'
      )
    out[i] = lookup[key]
  return out


def read(path, options: dict):
  path = pathlib.Path(path)
  mapping = _column_map(options, path)
  time_unit = options.get("time_unit", "ms")
  if time_unit not in TIME_UNITS:
    raise RecordingError(f"{path}: time_unit {time_unit!r}: expected one of {list(TIME_UNITS)}.")
  gaze_unit = options.get("gaze_unit", "fraction")
  if gaze_unit not in _UNITS:
    raise RecordingError(f"{path}: gaze_unit {gaze_unit!r}: expected one of {list(_UNITS)}.")
  screen = screen_size(options, path)
  if gaze_unit == "px" and screen is None:
    raise RecordingError(f"{path}: gaze_unit 'px' needs \"screen_px\": [width, height].")
  try:
    table, decimal_comma = read_table(path)
  except Exception as e:  # noqa: BLE001 - a corrupt file of any kind is one defect
    raise RecordingError(f"{path}: unreadable table ({type(e).__name__}: {e}).") from e
  headers = [str(h) for h in table.columns]
  for field, header in mapping.items():
    if header not in table.columns:
      raise RecordingError(
        f"{path}: column {header!r} (mapped to {field}) not found; headers: {headers}."
      )
  if len(table) == 0:
    raise RecordingError(f"{path}: empty table (no data rows).")
  missing = tuple(options.get("missing", ()))
  values = empty(len(table))
  for field, header in mapping.items():
    if field == "event":
      cells = _events(table[header], path, header, options.get("event_codes", {}))
    else:
      codes = options.get("valid_codes") if field.startswith("valid_") else None
      cells = column(table, header, path, decimal_comma, missing, codes)
    if field == "time_ms":
      cells = relative_ms(cells, time_unit, path, header)
    elif field == "event_duration_ms":
      cells = cells * (TIME_UNITS[time_unit] * 1e3)
    elif field in _SCREEN and gaze_unit == "px":
      cells = cells / screen[0 if field.endswith("_x") else 1]
    values[:, INDEX[field]] = cells
  units = {"pupil": options.get("pupil_unit", "mm")}
  return finish(values, NAME, path, options, units)


FORMAT = registry.Format(
  name=NAME,
  description='any CSV/TSV/XLSX through a column map (study.json "columns")',
  detect=detect,
  read=read,
)
