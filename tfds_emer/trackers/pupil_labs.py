"""Pupil Labs recordings: Pupil Player export folders (Pupil Core) and Pupil Cloud timeseries
folders (Neon, Invisible). Gaze is a fraction of the scene camera image, not of a screen.

A Player export (`exports/000/` of a recording) holds `gaze_positions.csv` (times in seconds,
`norm_pos` with the origin bottom-left, a `confidence` per row), `pupil_positions.csv` (per eye:
`eye_id` 0 = right, 1 = left; `diameter` in eye-camera px, `diameter_3d` in mm from the 3d
detector's rows), `fixations.csv` (`duration` in ms) and `blinks.csv` (`duration` in s).
A Cloud export holds `gaze.csv` (times in ns, gaze in scene-camera px, `worn`),
`fixations.csv`, `saccades.csv`, `blinks.csv`, `3d_eye_states.csv` (pupil diameters in mm) and
`info.json`, from which the scene camera (Neon 1600x1200, Invisible 1088x1080) is known.
"""

import json
import pathlib

import numpy as np
import pandas as pd

from tfds_emer.trackers import spans
from tfds_emer.trackers.registry import Format
from tfds_emer.trackers.schema import (
  BLINK,
  FIXATION,
  INDEX,
  SACCADE,
  Recording,
  RecordingError,
  empty,
)

PLAYER_FILES = ("gaze_positions.csv", "pupil_positions.csv")
NEON_FILES = ("gaze.csv", "3d_eye_states.csv", "fixations.csv", "saccades.csv", "blinks.csv")
SCENE_PX = {"module_serial_number": (1600, 1200), "glasses_serial_number": (1088, 1080)}
NS = "timestamp [ns]"


def _header(path: pathlib.Path) -> list[str]:
  try:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
      return [c.strip() for c in f.readline().split(",")]
  except OSError:
    return []


def _folder(path: pathlib.Path) -> pathlib.Path:
  return path.parent if path.is_file() else path


def _detect(path: pathlib.Path, files, marks) -> bool:
  """A folder holding one of `files` with a column of `marks`, or such a file itself."""
  candidates = [path] if path.is_file() else [path / name for name in files]
  return any(marks & set(_header(c)) for c in candidates if c.is_file())


def detect_player(path: pathlib.Path) -> bool:
  return _detect(path, PLAYER_FILES, {"gaze_timestamp", "pupil_timestamp"})


def detect_neon(path: pathlib.Path) -> bool:
  return _detect(path, NEON_FILES, {NS, f"start {NS}"})


def _table(folder: pathlib.Path, name: str, columns, required=True, what="") -> pd.DataFrame | None:
  """The file's columns as numbers; None for an optional file that is absent."""
  path = folder / name
  if not path.is_file():
    if required:
      raise RecordingError(f"{folder}: no {name} in this folder{what}")
    return None
  try:
    table = pd.read_csv(path, skipinitialspace=True)
  except (OSError, ValueError) as e:
    raise RecordingError(f"{path}: not a readable CSV file ({e})") from None
  table.columns = [str(c).strip() for c in table.columns]
  missing = [c for c in columns if c not in table.columns]
  if missing:
    raise RecordingError(
      f"{path}: no column {', '.join(map(repr, missing))}; has {list(table.columns)}"
    )
  for c in columns:
    numbers = pd.to_numeric(table[c], errors="coerce")
    bad = numbers.isna() & table[c].notna()
    if bad.any():
      row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
      raise RecordingError(
        f"{path} line {row}: column {c!r} should hold a number, got {table[c][bad].iloc[0]!r}"
      )
    if "timestamp" in c and numbers.isna().any():
      row = int(np.flatnonzero(numbers.isna().to_numpy())[0]) + 2
      raise RecordingError(f"{path} line {row}: column {c!r} is empty")
    table[c] = numbers
  return table


def _nearest(times, at, values, ok) -> np.ndarray:
  """values of the sample nearest each of `at`, where within half a sample step and `ok`."""
  out = np.full(len(at), np.nan)
  if not len(times):
    return out
  order = np.argsort(times, kind="stable")
  times, values, ok = times[order], values[order], ok[order]
  step = np.median(np.diff(times)) if len(times) > 1 else 0.0
  right = np.clip(np.searchsorted(times, at), 0, len(times) - 1)
  left = np.clip(right - 1, 0, len(times) - 1)
  pick = np.where(np.abs(times[left] - at) <= np.abs(times[right] - at), left, right)
  close = np.abs(times[pick] - at) <= step / 2
  use = close & ok[pick]
  out[use] = values[pick][use]
  return out


def _min_confidence(folder: pathlib.Path, options: dict) -> float:
  try:
    return float(options.get("min_confidence", 0.6))
  except (TypeError, ValueError):
    raise RecordingError(
      f"{folder}: min_confidence must be a number, got {options['min_confidence']!r}"
    ) from None


def read_player(path: pathlib.Path, options: dict) -> Recording:
  folder = _folder(path)
  floor = _min_confidence(folder, options)
  what = " (Pupil Player's Raw Data Exporter writes it)"
  gaze = _table(
    folder,
    "gaze_positions.csv",
    ["gaze_timestamp", "confidence", "norm_pos_x", "norm_pos_y"],
    what=what,
  )
  gaze = gaze.sort_values("gaze_timestamp", kind="stable").reset_index(drop=True)
  if gaze.empty:
    raise RecordingError(f"{folder / 'gaze_positions.csv'}: no gaze rows")
  seconds = gaze["gaze_timestamp"].to_numpy(float)
  t0 = seconds[0]
  values = empty(len(gaze))
  values[:, INDEX["time_ms"]] = (seconds - t0) * 1000.0
  ok = (gaze["confidence"].to_numpy(float) >= floor) & gaze[
    ["norm_pos_x", "norm_pos_y"]
  ].notna().all(axis=1).to_numpy()
  values[:, INDEX["gaze_x"]] = np.where(ok, gaze["norm_pos_x"], np.nan)
  values[:, INDEX["gaze_y"]] = np.where(ok, 1.0 - gaze["norm_pos_y"], np.nan)
  eye_ids = {"right": "0", "left": "1"}  # Pupil Core: eye 0 is the wearer's right eye
  if "base_data" in gaze.columns:
    sources = [
      {part.rsplit("-", 1)[-1] for part in str(b).split()} for b in gaze["base_data"].fillna("")
    ]
    for eye, eid in eye_ids.items():
      values[:, INDEX[f"valid_{eye}"]] = ok & np.array([eid in s for s in sources])
  else:
    values[:, INDEX["valid_left"]] = values[:, INDEX["valid_right"]] = ok
  units = {}
  notes = (f"gaze: fraction of the scene camera image; confidence < {floor:g} is invalid",)
  pupils = _table(
    folder,
    "pupil_positions.csv",
    ["pupil_timestamp", "eye_id", "confidence", "diameter"],
    required=False,
  )
  if pupils is not None:
    column, units["pupil"] = "diameter", "px (2d detector, eye camera image)"
    if "diameter_3d" in pupils.columns:
      three_d = pd.to_numeric(pupils["diameter_3d"], errors="coerce")
      if three_d.notna().any():
        pupils = pupils.assign(diameter_3d=three_d)[three_d.notna()]
        column, units["pupil"] = "diameter_3d", "mm"
    for eye, eid in eye_ids.items():
      rows = pupils[pupils["eye_id"] == int(eid)]
      values[:, INDEX[f"pupil_{eye}"]] = _nearest(
        rows["pupil_timestamp"].to_numpy(float),
        seconds,
        rows[column].to_numpy(float),
        rows["confidence"].to_numpy(float) >= floor,
      )
  fixations = _table(
    folder,
    "fixations.csv",
    ["start_timestamp", "duration", "norm_pos_x", "norm_pos_y"],
    required=False,
  )
  blinks = _table(
    folder, "blinks.csv", ["start_timestamp", "end_timestamp", "duration"], required=False
  )
  if fixations is not None:
    start = (fixations["start_timestamp"].to_numpy(float) - t0) * 1000.0
    duration = fixations["duration"].to_numpy(float)
    spans.paint(
      values,
      FIXATION,
      start,
      start + duration,
      duration,
      fixations["norm_pos_x"],
      1.0 - fixations["norm_pos_y"],
    )
  if blinks is not None:
    start = (blinks["start_timestamp"].to_numpy(float) - t0) * 1000.0
    end = (blinks["end_timestamp"].to_numpy(float) - t0) * 1000.0
    spans.paint(values, BLINK, start, end, blinks["duration"].to_numpy(float) * 1000.0)
  return Recording(
    values=values, format="pupil_player", source=str(folder), units=units, notes=notes
  )


def _scene_px(folder: pathlib.Path, options: dict) -> tuple[float, float]:
  if "scene_px" in options:
    try:
      width, height = (float(v) for v in options["scene_px"])
      return width, height
    except (TypeError, ValueError):
      raise RecordingError(
        f"{folder}: scene_px must be [width, height] in pixels, got {options['scene_px']!r}"
      ) from None
  info = folder / "info.json"
  try:
    meta = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
  except (OSError, ValueError) as e:
    raise RecordingError(f"{info}: not readable JSON ({e})") from None
  for key, size in SCENE_PX.items():
    if isinstance(meta, dict) and key in meta:
      return size
  raise RecordingError(
    f"{folder}: cannot tell the scene camera's size (no info.json naming a Neon or Invisible "
    'module); set "scene_px": [width, height] in study.json'
  )


def read_neon(path: pathlib.Path, options: dict) -> Recording:
  folder = _folder(path)
  what = " (Pupil Cloud's Timeseries Data download holds it)"
  gaze = _table(folder, "gaze.csv", [NS, "gaze x [px]", "gaze y [px]"], what=what)
  gaze = gaze.sort_values(NS, kind="stable").reset_index(drop=True)
  if gaze.empty:
    raise RecordingError(f"{folder / 'gaze.csv'}: no gaze rows")
  width, height = _scene_px(folder, options)
  ns = gaze[NS].to_numpy(np.int64)
  t0 = ns[0]
  values = empty(len(gaze))
  values[:, INDEX["time_ms"]] = (ns - t0) / 1e6
  worn = (
    gaze["worn"].astype(str).str.strip().str.lower().isin(["1", "1.0", "true"])
    if "worn" in gaze
    else True
  )
  ok = np.asarray(worn) & gaze[["gaze x [px]", "gaze y [px]"]].notna().all(axis=1).to_numpy()
  values[:, INDEX["gaze_x"]] = np.where(ok, gaze["gaze x [px]"] / width, np.nan)
  values[:, INDEX["gaze_y"]] = np.where(ok, gaze["gaze y [px]"] / height, np.nan)
  units = {}
  notes = [
    f"gaze: fraction of the {width:g}x{height:g} scene camera image; "
    "both eyes valid where worn and not blinking"
  ]
  eyes = _table(
    folder,
    "3d_eye_states.csv",
    [NS, "pupil diameter left [mm]", "pupil diameter right [mm]"],
    required=False,
  )
  if eyes is not None:
    units["pupil"] = "mm"
    eye_ns = eyes[NS].to_numpy(np.int64) - t0
    for eye in ("left", "right"):
      diameter = eyes[f"pupil diameter {eye} [mm]"].to_numpy(float)
      values[:, INDEX[f"pupil_{eye}"]] = _nearest(eye_ns, ns - t0, diameter, np.isfinite(diameter))
  columns = [f"start {NS}", f"end {NS}", "duration [ms]"]
  lists = [
    (FIXATION, "fixations.csv", columns + ["fixation x [px]", "fixation y [px]"]),
    (SACCADE, "saccades.csv", columns),
    (BLINK, "blinks.csv", columns),
  ]
  for kind, name, needed in lists:
    table = _table(folder, name, needed, required=False)
    if table is None:
      continue
    start, end = ((table[c].to_numpy(np.int64) - t0) / 1e6 for c in needed[:2])
    centre = (
      (table[needed[3]] / width, table[needed[4]] / height) if kind == FIXATION else (None, None)
    )
    spans.paint(values, kind, start, end, table["duration [ms]"], *centre)
  blinking = values[:, INDEX["event"]] == BLINK
  values[:, INDEX["valid_left"]] = values[:, INDEX["valid_right"]] = ok & ~blinking
  return Recording(
    values=values, format="pupil_neon", source=str(folder), units=units, notes=tuple(notes)
  )


FORMATS = (
  Format(
    name="pupil_player",
    description="Pupil Labs Pupil Player export folder (Pupil Core)",
    detect=detect_player,
    read=read_player,
  ),
  Format(
    name="pupil_neon",
    description="Pupil Labs Pupil Cloud timeseries folder (Neon, Invisible)",
    detect=detect_neon,
    read=read_neon,
  ),
)
