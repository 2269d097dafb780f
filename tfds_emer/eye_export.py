"""Eye-tracker exports: the model's 39 columns, reading Tobii Pro Lab exports, invalid rows,
fixation maps.

`read_export` maps an export as Tobii Pro Lab writes it (`.tsv`, `.csv`, `.xlsx`) onto `COLUMNS`:
- headers plain (`Gaze point X`) or with Pro Lab's units (`Gaze point X [DACS px]`,
  `Recording timestamp [μs]`, `Eye movement event duration [ms]`); time columns given in
  another unit are converted to the column's own unit (`UNITS`);
- tab, semicolon or comma separated, decimal points or decimal commas;
- rows of other sensors (a `Sensor` column other than `Eye Tracker`) dropped;
- text columns converted: `Validity left/right` (Valid 1, Invalid 0) and `Eye movement type`
  (`MOVEMENT_CODES`); every other column outside the 39 is left out and reported;
- if names leave columns missing, the authors' rule: an export with exactly 39 numeric columns
  is read in sheet order, cells as they are (no unit converted), gaze and clock found by name;
- the mapping file's `eye_columns` (39 headers in `COLUMNS` order) override both.
`EyeExport.rule` says which applied. Empty cells stay NaN here; `fill_invalid` decides what they become.
"""

import dataclasses
import numbers as numeric_types  # the stdlib ABCs; `numbers` below is this module's parser
import pathlib

import cv2
import numpy as np
import pandas as pd

from tfds_emer import vocabulary
from tfds_emer.eye_columns import (
  CLOCK_COLUMNS,
  COLUMNS,
  GAZE_COLUMNS,
  LOOKUP,
  MOVEMENT_CODES,
  NUM_COLUMNS,
  POWER_OF_TEN,
  PROLAB_HEADERS,
  TEXT_CODES,
  UNITS,
  VALIDITY_CODES,
  in_unit,
  split_header,
)
from tfds_emer.eye_columns import EYES_NOT_FOUND as EYES_NOT_FOUND  # the movement-type codes
from tfds_emer.eye_columns import FIXATION as FIXATION
from tfds_emer.eye_columns import SACCADE as SACCADE
from tfds_emer.eye_columns import UNCLASSIFIED as UNCLASSIFIED

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


_FLOAT32_MAX = float(np.finfo(np.float32).max)
# How an export's 39 columns were found (`EyeExport.rule`), as `validate` reports it.
RULES = {
  "named": "by header name",
  "sheet order": "in sheet order (the authors' rule)",
  "mapping": "by the mapping file's eye_columns",
  "partial": "by header name, some missing",  # read_export(complete=False) only
}


class ExportError(ValueError):
  """An eye export cannot be read; the message names the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class EyeExport:
  # float64 (rows, 39), NaN for empty cells: COLUMNS in their units (`UNITS`), or under the
  # authors' rule the sheet's 39 numeric columns in sheet order, as they are.
  values: np.ndarray
  gaze_cols: tuple[int, int]
  timestamps_ms: np.ndarray
  columns: tuple[str, ...]  # COLUMNS
  dropped: tuple[str, ...]  # headers left out (text, other sensors' or unknown columns)
  headers: tuple[str, ...] = ()  # the export's header read for each of the 39 columns ('': none)
  rule: str = "named"  # how they were found: a key of RULES

  def column(self, name: str) -> np.ndarray | None:
    """The model column `name` in its unit, NaN for empty cells; None if the export has no
    header of that name (sheet-order and partial reads)."""
    j = COLUMNS.index(name)
    if self.rule != "sheet order":
      return None if self.headers and not self.headers[j] else self.values[:, j]
    for k, header in enumerate(self.headers):
      hit = LOOKUP.get(split_header(header))
      if hit is not None and hit[0] == j:
        return in_unit(self.values[:, k], hit[1])
    return None

  def clock_ms(self) -> np.ndarray | None:
    """The recording clock in ms: `Recording timestamp`, else `Eyetracker timestamp`; None if
    neither is found by name."""
    for name in CLOCK_COLUMNS:
      t = self.column(name)
      if t is not None:
        return in_unit(t, POWER_OF_TEN[UNITS[name]] - POWER_OF_TEN["ms"])
    return None

  def misplaced(self) -> list[str]:
    """Under the authors' rule, headers known by name that sit at another column's place."""
    out = []
    for k, header in enumerate(self.headers if self.rule == "sheet order" else ()):
      hit = LOOKUP.get(split_header(header))
      if hit is not None and hit[0] != k:
        out.append(f"{header!r} is column {k + 1}, where the model reads {COLUMNS[k]!r}")
    return out


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
  sensor = next((h for h in table.columns if split_header(h) == ("sensor", "")), None)
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


def _mapped(headers: list, path, mapping: dict) -> list[str]:
  """The mapping file's 39 `eye_columns`; raises naming what is missing."""
  given = list(mapping["eye_columns"])
  missing = [c for c in given if c not in headers]
  if len(given) != NUM_COLUMNS or missing:
    raise ExportError(
      f"{path}: mapping eye_columns must list {NUM_COLUMNS} headers of the export "
      f"(got {len(given)}; not found: {missing}); found {[str(h) for h in headers]}."
    )
  return given


def _named(headers: list, path, mapping: dict) -> tuple[list, str | None]:
  """(header, power of ten to COLUMNS' unit) for each of COLUMNS, None where no header names
  it, and what is missing (None if nothing); raises if a column is given twice or the gaze is
  missing."""
  found = {}
  for h in headers:
    hit = LOOKUP.get(split_header(h))
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
  for j, h in zip(gaze, mapping.get("gaze_columns", ()), strict=False):
    if h in headers:
      found[j] = (h, 0)
  if any(j not in found for j in gaze):
    expected = [f"{c!r} or {PROLAB_HEADERS[j]!r}" for c, j in zip(GAZE_COLUMNS, gaze, strict=True)]
    raise ExportError(
      f"{path}: no gaze columns; expected {' and '.join(expected)} among "
      f"{[str(h) for h in headers]} (read by name, or in sheet order, the gaze is found by name)."
    )
  chosen = [found.get(j) for j in range(NUM_COLUMNS)]
  if None not in chosen:
    return chosen, None
  names = [f"{COLUMNS[j]!r} ({PROLAB_HEADERS[j]!r})" for j, c in enumerate(chosen) if c is None]
  return chosen, (
    f"{path}: missing column(s) the model needs: {', '.join(names)}; found "
    f"{[str(h) for h in headers]}"
  )


def _convert(cells: pd.Series, decimal_comma: bool, codes=None) -> tuple[np.ndarray, np.ndarray]:
  """A column as float64 (NaN for empty cells), and where a cell is neither a number nor one
  of `codes` (text → value)."""
  if pd.api.types.is_numeric_dtype(cells):
    return cells.to_numpy(np.float64), np.zeros(len(cells), bool)
  obj = cells.to_numpy(object)
  is_text = np.array([isinstance(v, str) for v in obj], bool)
  out, bad = np.full(len(obj), np.nan), np.zeros(len(obj), bool)
  bad[~is_text] = [not isinstance(v, numeric_types.Real | None) for v in obj[~is_text]]  # dates, …
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
    bad[is_text] = np.isnan(num) & ~key.isin(("", "nan")).to_numpy()
    out[is_text] = num
  return out, bad


def numbers(cells: pd.Series, path, header, decimal_comma: bool, codes=None) -> np.ndarray:
  """A column as float64 (NaN for empty cells); a text cell is an error naming it."""
  out, bad = _convert(cells, decimal_comma, codes)
  if bad.any():
    first = int(np.argmax(bad))
    want = f"a number or one of {list(codes)}" if codes else "a number"
    raise ExportError(
      f"{path}: column {header!r} row {cells.index[first] + 2}: {cells.iloc[first]!r} is not "
      f"{want} ({int(bad.sum())} such cell(s) in this column)."
    )
  return out


def _sheet_order(table: pd.DataFrame, decimal_comma: bool) -> tuple[list, np.ndarray]:
  """The authors' rule: every numeric column of the sheet, in sheet order. A column is numeric
  if each non-empty cell is a number, or each text cell one of the known codes of one kind
  (Valid/Invalid, or the movement types); an empty column counts, as pandas reads it."""
  headers, columns = [], []
  for header in table.columns:
    for codes in (None, VALIDITY_CODES, MOVEMENT_CODES):
      values, bad = _convert(table[header], decimal_comma, codes)
      if not bad.any():
        headers.append(header)
        columns.append(values)
        break
  return headers, np.stack(columns, axis=1) if columns else np.empty((len(table), 0))


def _sheet_gaze(headers: list, mapping: dict) -> tuple[int, int] | None:
  """Positions of the gaze columns found by name (or the mapping's gaze_columns) in sheet order."""
  named = {
    LOOKUP.get(split_header(h), (None,))[0]: k for k, h in reversed(list(enumerate(headers)))
  }
  gaze = [named.get(COLUMNS.index(c)) for c in GAZE_COLUMNS]
  for i, h in enumerate(mapping.get("gaze_columns", ())[:2]):
    gaze[i] = headers.index(h) if h in headers else gaze[i]
  return None if None in gaze else (gaze[0], gaze[1])


def read_export(path, mapping: dict | None = None, complete: bool = True) -> EyeExport:
  """The export's rows on the model's 39 columns; raises ExportError naming the defect.

  The columns are found by the mapping file's `eye_columns`, else by header name, else, if
  names leave some missing, by the authors' rule (`_sheet_order`). With `complete=False` an
  export neither rule reads whole is read by name, missing columns NaN (rule 'partial').
  """
  path, mapping = pathlib.Path(path), mapping or {}
  try:
    table, decimal_comma = read_table(path)
  except Exception as e:  # noqa: BLE001 - a corrupt file of any kind is one defect
    raise ExportError(f"{path}: unreadable eye export ({type(e).__name__}: {e}).") from e
  table = _eye_tracker_rows(table, path)
  if len(table) == 0:
    raise ExportError(f"{path}: empty eye export (no data rows).")
  headers, missing = list(table.columns), None
  gaze_cols = (COLUMNS.index(GAZE_COLUMNS[0]), COLUMNS.index(GAZE_COLUMNS[1]))
  if "eye_columns" in mapping:
    rule, chosen = "mapping", [(h, 0) for h in _mapped(headers, path, mapping)]
  else:
    rule, (chosen, missing) = "named", _named(headers, path, mapping)
  if missing is not None:
    used, values = _sheet_order(table, decimal_comma)
    sheet_gaze = _sheet_gaze(used, mapping)
    if len(used) == NUM_COLUMNS and sheet_gaze is not None:
      rule, gaze_cols = "sheet order", sheet_gaze
    elif complete:
      raise ExportError(
        f"{missing}. Nor does the authors' rule apply (every numeric column, in sheet order): "
        f"it needs {NUM_COLUMNS} numeric columns among them 'Gaze point X' and 'Gaze point Y', "
        f"and found {len(used)}: {[str(h) for h in used]}. Export the columns from Pro Lab, "
        "or list the 39 headers as 'eye_columns' in the mapping file."
      )
    else:
      rule = "partial"
  if rule != "sheet order":
    values = np.full((len(table), NUM_COLUMNS), np.nan)
    for j, (header, power) in ((j, c) for j, c in enumerate(chosen) if c is not None):
      codes = TEXT_CODES.get(COLUMNS[j]) if rule != "mapping" else None
      values[:, j] = in_unit(numbers(table[header], path, header, decimal_comma, codes), power)
    used = [c[0] if c is not None else "" for c in chosen]
  beyond = ~np.isnan(values) & ~(np.abs(values) <= _FLOAT32_MAX)
  if beyond.any():
    i, j = np.argwhere(beyond)[0]
    raise ExportError(
      f"{path}: column {used[j]!r} row {table.index[i] + 2}: {values[i, j]:g} is beyond "
      f"float32 (|x| ≤ {_FLOAT32_MAX:.3g}) or not finite ({int(beyond.sum())} such cell(s))."
    )
  if not np.isfinite(values[:, list(gaze_cols)]).all(axis=1).any():
    raise ExportError(f"{path}: no valid row; every gaze cell is empty or NaN.")
  export = EyeExport(
    values=values,
    gaze_cols=gaze_cols,
    timestamps_ms=np.arange(len(values), dtype=np.float64),  # rows weigh equally, if no clock
    columns=COLUMNS,
    dropped=tuple(str(c) for c in table.columns if c not in set(used)),
    headers=tuple(str(h) for h in used),
    rule=rule,
  )
  clock = export.clock_ms()
  if clock is not None and np.isfinite(clock).all():
    export = dataclasses.replace(export, timestamps_ms=clock)
  return export
