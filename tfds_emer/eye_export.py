"""Eye-tracker exports: the model's 39 columns, reading Tobii Pro Lab exports, invalid rows,
fixation maps.

`read_export` maps an export as Tobii Pro Lab writes it (`.tsv`, `.csv`, `.xlsx`) onto `COLUMNS`:
- headers plain (`Gaze point X`) or with Pro Lab's units (`Gaze point X [DACS px]`,
  `Recording timestamp [μs]`, `Eye movement event duration [ms]`); time columns given in
  another unit are converted to the column's own unit (`UNITS`);
- tab, semicolon or comma separated, decimal points or decimal commas;
- rows of other sensors (a `Sensor` column other than `Eye Tracker`) dropped;
- text columns converted: `Validity left/right` (Valid 1, Invalid 0) and `Eye movement type`
  (`MOVEMENT_CODES`); every other column outside the 39 is left out and reported.
Empty cells stay NaN here; `fill_invalid` decides what they become.
"""

import dataclasses
import pathlib
import re

import cv2
import numpy as np
import pandas as pd

from tfds_emer import vocabulary

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
assert NUM_COLUMNS == vocabulary.EYE_WIDTH
GAZE_COLUMNS = ("Gaze point X", "Gaze point Y")
# Clocks: `Recording timestamp` counts from the start of the Tobii recording (which may span
# several stimuli of a session), `Eyetracker timestamp` is the device clock.
CLOCK_COLUMNS = ("Recording timestamp", "Eyetracker timestamp")
# Values of "Eye movement type code"; Pro Lab writes the names of `MOVEMENT_CODES`.
UNCLASSIFIED, FIXATION, SACCADE, EYES_NOT_FOUND = 0, 1, 2, 3
MOVEMENT_CODES = {
  "Unclassified": UNCLASSIFIED,
  "Fixation": FIXATION,
  "Saccade": SACCADE,
  "EyesNotFound": EYES_NOT_FOUND,
}
VALIDITY_CODES = {"Valid": 1, "Invalid": 0}
SCREEN_PX = (1920, 1080)
MAP_SIZE = vocabulary.MAP_SIZE


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


# What Tobii Pro Lab calls each model column (its "unit-bracketed" header style).
PROLAB_HEADERS = (
  "Recording timestamp [μs]",
  "Eyetracker timestamp [μs]",
  "Gaze point X [DACS px]",
  "Gaze point Y [DACS px]",
  "Gaze point left X [DACS px]",
  "Gaze point left Y [DACS px]",
  "Gaze point right X [DACS px]",
  "Gaze point right Y [DACS px]",
  "Gaze direction left X [DACS norm]",
  "Gaze direction left Y [DACS norm]",
  "Gaze direction left Z [DACS norm]",
  "Gaze direction right X [DACS norm]",
  "Gaze direction right Y [DACS norm]",
  "Gaze direction right Z [DACS norm]",
  "Pupil diameter left [mm]",
  "Pupil diameter right [mm]",
  "Validity left",
  "Validity right",
  "Eye position left X [DACS mm]",
  "Eye position left Y [DACS mm]",
  "Eye position left Z [DACS mm]",
  "Eye position right X [DACS mm]",
  "Eye position right Y [DACS mm]",
  "Eye position right Z [DACS mm]",
  "Gaze point left X [DACS mm]",
  "Gaze point left Y [DACS mm]",
  "Gaze point right X [DACS mm]",
  "Gaze point right Y [DACS mm]",
  "Gaze point X [MCS norm]",
  "Gaze point Y [MCS norm]",
  "Gaze point left X [MCS norm]",
  "Gaze point left Y [MCS norm]",
  "Gaze point right X [MCS norm]",
  "Gaze point right Y [MCS norm]",
  "Eye movement type",
  "Eye movement event duration [ms]",
  "Eye movement type index",
  "Fixation point X [DACS px]",
  "Fixation point Y [DACS px]",
)
# The unit each time column of COLUMNS holds; exports in another time unit are converted.
UNITS = {"Recording timestamp": "ms", "Eyetracker timestamp": "us", "Gaze event duration": "ms"}
_POWER_OF_TEN = {"s": 0, "ms": -3, "us": -6, "ns": -9}  # of a second
# Older Pro Lab versions call the event duration "Gaze event duration".
_ALIASES = {"Gaze event duration": ("gaze event duration",)}
_TEXT_CODES = {
  "Validity left": VALIDITY_CODES,
  "Validity right": VALIDITY_CODES,
  "Eye movement type code": MOVEMENT_CODES,
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ExportError(ValueError):
  """An eye export cannot be read; the message names the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class EyeExport:
  values: np.ndarray  # float64 (rows, 39) in COLUMNS order and units, NaN for empty cells
  gaze_cols: tuple[int, int]
  timestamps_ms: np.ndarray
  columns: tuple[str, ...]  # COLUMNS
  dropped: tuple[str, ...]  # headers left out (text, other sensors' or unknown columns)
  headers: tuple[str, ...] = ()  # the export's header read for each of COLUMNS


def _split(header) -> tuple[str, str]:
  """('gaze point x', 'dacspx') from 'Gaze point X [DACS px]' (or '(DACSpx)', or no unit)."""
  m = re.fullmatch(r"\s*(.*?)\s*(?:\[([^\]]*)\]|\(([^)]*)\))?\s*", str(header))
  base, unit = m.group(1), m.group(2) or m.group(3) or ""
  unit = re.sub(r"\s", "", unit.lower()).replace("μ", "u").replace("µ", "u")
  return re.sub(r"\s+", " ", base.lower()), unit


def _lookup() -> dict:
  """(base, unit) of an accepted header → (column index, power of ten to the column's unit)."""
  table = {}
  for j, (name, prolab) in enumerate(zip(COLUMNS, PROLAB_HEADERS, strict=True)):
    bases = {_split(name)[0], _split(prolab)[0], *_ALIASES.get(name, ())}
    if name in UNITS:
      own = _POWER_OF_TEN[UNITS[name]]
      units = {"": 0} | {u: p - own for u, p in _POWER_OF_TEN.items()}
    else:
      units = {_split(name)[1]: 0, _split(prolab)[1]: 0}
    table.update({(b, u): (j, f) for b in bases for u, f in units.items()})
  return table


_LOOKUP = _lookup()


def read_table(path: pathlib.Path, skiprows: int = 0) -> tuple[pd.DataFrame, bool]:
  """The export's cells and whether text cells may use decimal commas.

  xlsx through python-calamine (openpyxl if it is not installed); text exports with the
  separator their header line uses most (tab, then semicolon, then comma), the header being
  the line after the `skiprows` first lines.
  """
  if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
    try:
      return _calamine_table(path), True
    except ImportError:
      return pd.read_excel(path), True
  with open(path, encoding="utf-8-sig") as f:
    for _ in range(skiprows):
      f.readline()
    first = f.readline()
  sep = max(("\t", ";", ","), key=first.count)
  table = pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8-sig", skiprows=skiprows)
  return table, sep != ","


def _header(j: int, cell) -> str:
  """A header cell as pandas names it (`Unnamed: 3` when empty, `5` for 5.0)."""
  if cell == "":
    return f"Unnamed: {j}"
  return str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell)


def _calamine_table(path: pathlib.Path) -> pd.DataFrame:
  """The first sheet as `pd.read_excel` reads it (header on row 1, repeated headers `X.1`),
  built column by column from python-calamine's cells (pandas' calamine
  engine converts cell by cell in Python)."""
  import python_calamine  # noqa: PLC0415 - optional; ImportError selects openpyxl

  rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
  if not rows:
    return pd.DataFrame()
  names, seen = [], {}
  for j, cell in enumerate(rows[0]):
    name = _header(j, cell)
    names.append(f"{name}.{seen[name]}" if name in seen else name)
    seen[name] = seen.get(name, 0) + 1
  body = np.array(rows[1:], dtype=object).reshape(len(rows) - 1, len(names))
  body[body == ""] = np.nan  # empty cells
  table = {}
  for name, cells in zip(names, body.T, strict=True):
    try:
      table[name] = cells.astype(np.float64)
    except (TypeError, ValueError):  # text or dates: kept as cells
      table[name] = cells
  return pd.DataFrame(table)


def _eye_tracker_rows(table: pd.DataFrame, path) -> pd.DataFrame:
  sensor = next((h for h in table.columns if _split(h) == ("sensor", "")), None)
  if sensor is None or len(table) == 0:
    return table
  names = table[sensor].astype(str).str.replace(r"\s", "", regex=True).str.lower()
  keep = (names == "eyetracker").to_numpy()
  if not keep.any():
    seen = sorted(set(table[sensor].dropna().astype(str)))[:5]
    raise ExportError(
      f"{path}: no row of the eye tracker; column {sensor!r} holds {seen}, expected 'Eye Tracker'."
    )
  return table[keep]


def _map_columns(headers: list, path, mapping: dict) -> list[tuple[str, int]]:
  """(header, power of ten to COLUMNS' unit) for each of COLUMNS; raises naming what is missing."""
  if "eye_columns" in mapping:
    given = list(mapping["eye_columns"])
    missing = [c for c in given if c not in headers]
    if len(given) != NUM_COLUMNS or missing:
      raise ExportError(
        f"{path}: mapping eye_columns must list {NUM_COLUMNS} headers of the export "
        f"(got {len(given)}; not found: {missing}); found {[str(h) for h in headers]}."
      )
    return [(h, 0) for h in given]
  found = {}
  for h in headers:
    hit = _LOOKUP.get(_split(h))
    if hit is None:
      continue
    j, power = hit
    if j in found:
      raise ExportError(
        f"{path}: columns {found[j][0]!r} and {h!r} both give the model column "
        f"{COLUMNS[j]!r}; keep one, or list the 39 headers as 'eye_columns' in the mapping file."
      )
    found[j] = (h, power)
  gaze = [COLUMNS.index(c) for c in GAZE_COLUMNS]
  if "gaze_columns" in mapping:
    for j, h in zip(gaze, mapping["gaze_columns"], strict=True):
      if h in headers:
        found[j] = (h, 0)
  if any(j not in found for j in gaze):
    expected = [f"{c!r} or {PROLAB_HEADERS[j]!r}" for c, j in zip(GAZE_COLUMNS, gaze, strict=True)]
    raise ExportError(
      f"{path}: no gaze columns; expected {' and '.join(expected)} among "
      f"{[str(h) for h in headers]}."
    )
  missing = [j for j in range(NUM_COLUMNS) if j not in found]
  if missing:
    names = [f"{COLUMNS[j]!r} ({PROLAB_HEADERS[j]!r})" for j in missing]
    raise ExportError(
      f"{path}: missing column(s) the model needs: {', '.join(names)}; found "
      f"{[str(h) for h in headers]}. Export them from Pro Lab, or list the 39 headers as "
      "'eye_columns' in the mapping file."
    )
  return [found[j] for j in range(NUM_COLUMNS)]


def numbers(cells: pd.Series, path, header, decimal_comma: bool, codes=None) -> np.ndarray:
  """A column as float64 (NaN for empty cells); a text cell is an error naming it."""
  if pd.api.types.is_numeric_dtype(cells):
    return cells.to_numpy(np.float64)
  obj = cells.to_numpy(object)
  is_text = np.array([isinstance(v, str) for v in obj], bool)
  out = np.full(len(obj), np.nan)
  if (~is_text).any():
    out[~is_text] = pd.to_numeric(pd.Series(obj[~is_text]), errors="coerce").to_numpy(float)
  if is_text.any():
    text = pd.Series(obj[is_text], dtype=str).str.strip()
    key = text.str.replace(" ", "").str.lower()
    coded = {k.lower(): v for k, v in (codes or {}).items()}
    if decimal_comma:
      text = text.str.replace(",", ".", regex=False)
    num = pd.to_numeric(text, errors="coerce").to_numpy(float)
    num = np.where(key.isin(coded).to_numpy(), key.map(coded).to_numpy(float), num)
    bad = np.isnan(num) & ~key.isin(("", "nan")).to_numpy()
    if bad.any():
      first = int(np.flatnonzero(is_text)[np.argmax(bad)])
      want = f"a number or one of {list(codes)}" if codes else "a number"
      raise ExportError(
        f"{path}: column {header!r} row {cells.index[first] + 2}: {obj[first]!r} is not "
        f"{want} ({int(bad.sum())} such cell(s) in this column)."
      )
    out[is_text] = num
  return out


def read_export(path, mapping: dict | None = None) -> EyeExport:
  """The export's rows in COLUMNS order and units; raises ExportError naming the defect."""
  path, mapping = pathlib.Path(path), mapping or {}
  try:
    table, decimal_comma = read_table(path)
  except Exception as e:  # noqa: BLE001 - a corrupt file of any kind is one defect
    raise ExportError(f"{path}: unreadable eye export ({type(e).__name__}: {e}).") from e
  table = _eye_tracker_rows(table, path)
  if len(table) == 0:
    raise ExportError(f"{path}: empty eye export (no data rows).")
  headers = _map_columns(list(table.columns), path, mapping)
  values = np.empty((len(table), NUM_COLUMNS))
  for j, (header, power) in enumerate(headers):
    codes = _TEXT_CODES.get(COLUMNS[j])
    column = numbers(table[header], path, header, decimal_comma, codes)
    # Dividing by an exact power of ten keeps whole microseconds exact in milliseconds.
    values[:, j] = column * 10.0**power if power >= 0 else column / 10.0**-power
  beyond = ~np.isnan(values) & ~(np.abs(values) <= _FLOAT32_MAX)
  if beyond.any():
    i, j = np.argwhere(beyond)[0]
    raise ExportError(
      f"{path}: column {headers[j][0]!r} row {table.index[i] + 2}: {values[i, j]:g} is beyond "
      f"float32 (|x| ≤ {_FLOAT32_MAX:.3g}) or not finite ({int(beyond.sum())} such cell(s))."
    )
  gaze_cols = (COLUMNS.index(GAZE_COLUMNS[0]), COLUMNS.index(GAZE_COLUMNS[1]))
  if not np.isfinite(values[:, list(gaze_cols)]).all(axis=1).any():
    raise ExportError(f"{path}: no valid row; every gaze cell is empty or NaN.")
  ts = values[:, 0]
  if not np.isfinite(ts).all():
    ts = np.arange(len(values), dtype=np.float64)  # rows weigh equally
  used = {h for h, _ in headers}
  return EyeExport(
    values=values,
    gaze_cols=gaze_cols,
    timestamps_ms=ts,
    columns=COLUMNS,
    dropped=tuple(str(c) for c in table.columns if c not in used),
    headers=tuple(str(h) for h, _ in headers),
  )
