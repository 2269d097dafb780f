"""Gazepoint GP3 / GP3 HD CSV, as Gazepoint Analysis (`*_all_gaze.csv`) and Gazepoint Control
write it: one row per sample, Gazepoint's Open Gaze API names as headers.

- `TIME` (or `TIME(2024/01/31 10:00:00.000)`): seconds → `time_ms` from the first row;
- `BPOGX`/`BPOGY` (best point of gaze, fraction of the screen) where `BPOGV` is 1 → gaze;
- `LPMM`/`RPMM` (pupil, mm) where `LPMMV`/`RPMMV` is 1, else `LPD`/`RPD` (pixels of the eye
  camera) where `LPV`/`RPV` is 1 → pupils; `LPV`/`RPV` → `valid_left/right`;
- `FPOGX`/`FPOGY` where `FPOGV` is 1 → the fixation's centre; `FPOGV` is 1 only while a
  fixation holds, so those rows are FIXATION, lasting the largest `FPOGD` (s) of their
  `FPOGID`; rows with a blink id `BKID` > 0 (0: no blink) are BLINK, lasting `BKDUR` (s) where
  Gazepoint gives it, else from the blink's first to last row; every other row is UNKNOWN.
"""

import pathlib
import re

import numpy as np

from tfds_emer.eye_export import read_table
from tfds_emer.trackers import registry
from tfds_emer.trackers.events import run_durations
from tfds_emer.trackers.schema import BLINK, FIXATION, INDEX, UNKNOWN, RecordingError, empty
from tfds_emer.trackers.text_columns import column, finish, relative_ms

NAME = "gazepoint"
_TIME = re.compile(r"\s*TIME\s*(\(.*\))?\s*", re.IGNORECASE)
_REQUIRED = ("FPOGX", "FPOGY", "FPOGV", "BPOGX", "BPOGY")


def _cells(line: str) -> list[str]:
  sep = max(("\t", ";", ","), key=line.count)
  return [c.strip().strip('"').upper() for c in line.split(sep)]


def detect(path: pathlib.Path) -> bool:
  """A text file whose header holds TIME and Gazepoint's fixation and best-gaze columns."""
  path = pathlib.Path(path)
  if not path.is_file():
    return False
  try:
    with open(path, encoding="utf-8-sig") as f:
      header = f.readline()
  except (OSError, UnicodeDecodeError):
    return False
  cells = _cells(header)
  return all(c in cells for c in _REQUIRED) and any(_TIME.fullmatch(c) for c in cells)


def read(path, options: dict):
  path = pathlib.Path(path)
  try:
    table, decimal_comma = read_table(path)
  except Exception as e:  # noqa: BLE001 - a corrupt file of any kind is one defect
    raise RecordingError(f"{path}: unreadable Gazepoint CSV ({type(e).__name__}: {e}).") from e
  headers = {str(h).strip().upper(): h for h in table.columns}
  time_header = next((h for k, h in headers.items() if _TIME.fullmatch(k)), None)
  missing = [c for c in _REQUIRED if c not in headers] + ([] if time_header else ["TIME"])
  if missing:
    raise RecordingError(
      f"{path}: not a Gazepoint export; missing column(s) {missing} among "
      f"{[str(h) for h in table.columns]}."
    )
  if len(table) == 0:
    raise RecordingError(f"{path}: empty Gazepoint export (no data rows).")

  def get(name):
    return column(table, headers[name], path, decimal_comma) if name in headers else None

  def where(value, flag):
    """`value` where the validity column `flag` is 1 (everywhere when the export lacks it)."""
    if value is None:
      return None
    ok = get(flag)
    return value if ok is None else np.where(ok == 1, value, np.nan)

  values = empty(len(table))
  values[:, INDEX["time_ms"]] = relative_ms(
    column(table, time_header, path, decimal_comma), "s", path, time_header
  )
  time_ms = values[:, INDEX["time_ms"]]
  values[:, INDEX["gaze_x"]] = where(get("BPOGX"), "BPOGV")
  values[:, INDEX["gaze_y"]] = where(get("BPOGY"), "BPOGV")
  units = {}
  if "LPMM" in headers or "RPMM" in headers:
    pupils, units["pupil"] = (("LPMM", "LPMMV"), ("RPMM", "RPMMV")), "mm"
  else:
    pupils, units["pupil"] = (("LPD", "LPV"), ("RPD", "RPV")), "px"
  for field, (name, flag) in zip(("pupil_left", "pupil_right"), pupils, strict=True):
    value = where(get(name), flag)
    if value is not None:
      values[:, INDEX[field]] = value
  for field, flag in (("valid_left", "LPV"), ("valid_right", "RPV")):
    ok = get(flag)
    if ok is not None:
      values[:, INDEX[field]] = np.where(np.isfinite(ok), (ok == 1).astype(float), np.nan)

  fixating = get("FPOGV") == 1
  values[:, INDEX["fixation_x"]] = np.where(fixating, get("FPOGX"), np.nan)
  values[:, INDEX["fixation_y"]] = np.where(fixating, get("FPOGY"), np.nan)
  fix_id = get("FPOGID")
  if fix_id is not None:
    fixating &= fix_id > 0
  blink_id = get("BKID")
  blinking = np.zeros(len(table), bool) if blink_id is None else blink_id > 0
  event = np.where(blinking, BLINK, np.where(fixating, FIXATION, UNKNOWN)).astype(float)
  values[:, INDEX["event"]] = event

  duration = run_durations(time_ms, event, fix_id)
  fix_dur = get("FPOGD")
  if fix_dur is not None and fix_id is not None:
    duration = _longest(duration, event == FIXATION, fix_id, fix_dur * 1e3)
  blink_dur = get("BKDUR")
  if blink_dur is not None and blink_id is not None:
    given = np.where(blink_dur > 0, blink_dur * 1e3, np.nan)
    duration = _longest(duration, event == BLINK, blink_id, given)
  values[:, INDEX["event_duration_ms"]] = duration
  return finish(values, NAME, path, options, units)


def _longest(duration, rows, ids, given) -> np.ndarray:
  """`duration` with each event's rows set to the largest `given` among its rows, if any."""
  out = duration.copy()
  for key in np.unique(ids[rows & np.isfinite(ids)]):
    mine = rows & (ids == key)
    if np.isfinite(given[mine]).any():
      out[mine] = np.nanmax(given[mine])
  return out


FORMAT = registry.Format(
  name=NAME,
  description="Gazepoint GP3 CSV (Gazepoint Analysis/Control)",
  detect=detect,
  read=read,
)
