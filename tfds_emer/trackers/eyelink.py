"""SR Research EyeLink recordings: ASC text (edf2asc's output) and EDF binary (through eyelinkio).

An ASC file holds sample lines (`time x y pupil flags`, or `time xl yl pl xr yr pr flags` when
binocular, `.` where the eye was lost, optional velocity/resolution columns after those), event
lines (`EFIX L start end duration x y pupil`, `ESACC ...`, `EBLINK ...`), `MSG time text` lines
(`GAZE_COORDS`/`DISPLAY_COORDS left top right bottom` give the screen) and `START`/`SAMPLES`
lines naming the eyes recorded in the block that follows.
"""

import math
import pathlib
import re

import numpy as np

from tfds_emer.trackers import eyelink_edf
from tfds_emer.trackers.eyelink_rows import KINDS, Parsed, recording
from tfds_emer.trackers.registry import Format
from tfds_emer.trackers.schema import Recording, RecordingError

ASC_MARKS = re.compile(
  rb"^(\*\* CONVERTED FROM .*\bEDF\b"
  rb"|(SAMPLES|EVENTS)\s+(GAZE|HREF)\s"
  rb"|START\s+\d+\s+(LEFT|RIGHT)\s)",
  re.M | re.I,
)
COORDS = re.compile(
  r"\b(GAZE_COORDS|DISPLAY_COORDS)\s*=?\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)"
)
EYES = ("left", "right")
HEAD_BYTES = 256 * 1024


def detect_asc(path: pathlib.Path) -> bool:
  if not path.is_file():
    return False
  try:
    with open(path, "rb") as f:
      head = f.read(HEAD_BYTES)
  except OSError:
    return False
  return bool(ASC_MARKS.search(head))


def _number(token: str) -> float:
  return math.nan if token == "." else float(token)


PAD = {  # a monocular sample's time, x, y, pupil as the 7 cells of a binocular one
  ("left",): lambda t: t + [".", ".", "."],
  ("right",): lambda t: t[:1] + [".", ".", "."] + t[1:],
}


def _is_number(cell: str) -> bool:
  try:
    float(cell)
    return True
  except ValueError:
    return False


def _bad_sample(path, number, line, eyes):
  values = " ".join(f"x{e[0]} y{e[0]} pupil{e[0]}" for e in eyes)
  raise RecordingError(
    f"{path} line {number}: expected a time and {3 * len(eyes)} values ({values}, '.' where "
    f"missing), got {line.strip()[:80]!r}"
  )


def parse_asc(path: pathlib.Path) -> Parsed:
  """The samples, events, screen and pupil type of an ASC file."""
  try:
    text = path.read_text(encoding="utf-8", errors="replace")
  except OSError as e:
    raise RecordingError(f"{path}: cannot read ({e.strerror})") from None
  cells, numbers, events = [], [], []  # sample lines as 7 strings each: t xl yl pl xr yr pr
  eyes = None  # the eyes of the current block, in sample-column order
  seen, coords = set(), {}
  pupil, has_events = None, False
  for number, line in enumerate(text.splitlines(), 1):
    if not line or line[0] in "*#;":
      continue
    if line[0].isdigit():
      if eyes is None:
        raise RecordingError(
          f"{path} line {number}: a sample before any START or SAMPLES line naming the eyes "
          "recorded"
        )
      need = 1 + 3 * len(eyes)
      tokens = line.split(None, need)[:need]
      if len(tokens) < need:
        _bad_sample(path, number, line, eyes)
      cells.extend(tokens if eyes == EYES else PAD[eyes](tokens))
      numbers.append(number)
      continue
    tokens = line.split()
    head = tokens[0]
    if head in ("EFIX", "ESACC", "EBLINK"):
      has_events = True
      try:
        eye, start, end, duration = tokens[1], float(tokens[2]), float(tokens[3]), float(tokens[4])
        x, y = (_number(tokens[5]), _number(tokens[6])) if head == "EFIX" else (math.nan, math.nan)
      except (IndexError, ValueError):
        raise RecordingError(
          f"{path} line {number}: expected '{head} L|R start end duration ...', "
          f"got {line.strip()[:80]!r}"
        ) from None
      events.append((KINDS[head[1:]], eye, start, end, duration, x, y))
    elif head in ("START", "SAMPLES"):
      if head == "SAMPLES" and len(tokens) > 1 and tokens[1] != "GAZE":
        raise RecordingError(
          f"{path} line {number}: samples in {tokens[1]} coordinates, not screen GAZE; convert the "
          "EDF again with edf2asc -sg"
        )
      named = tuple(e for e in EYES if e.upper() in tokens)
      if named:
        eyes = named
        seen.update(named)
    elif head == "EVENTS":
      has_events = True
    elif head == "PUPIL" and len(tokens) > 1:
      pupil = tokens[1].upper()
    elif head == "MSG" and "_COORDS" in line:
      match = COORDS.search(line)
      if match:
        left, top, right, bottom = (float(v) for v in match.groups()[1:])
        coords.setdefault(match.group(1), (left, top, right - left + 1, bottom - top + 1))
  table = np.array(cells, dtype=object).reshape(-1, 7)
  table[table == "."] = "nan"
  try:
    table = table.astype(float)
  except ValueError:
    row = next(j for j, r in enumerate(table) if not all(map(_is_number, r)))
    line = text.splitlines()[numbers[row] - 1]
    _bad_sample(path, numbers[row], line, tuple(e for e in EYES if e in seen))
  return Parsed(
    time=table[:, 0],
    eyes={e: table[:, 1 + 3 * EYES.index(e) : 4 + 3 * EYES.index(e)] for e in EYES if e in seen},
    events=events,
    screen=coords.get("GAZE_COORDS", coords.get("DISPLAY_COORDS")),
    pupil=pupil,
    has_events=has_events,
  )


def read_asc(path: pathlib.Path, options: dict) -> Recording:
  return recording(path, parse_asc(path), options, "eyelink_asc")


FORMATS = (
  Format(
    name="eyelink_asc",
    description="SR Research EyeLink ASC (edf2asc output)",
    detect=detect_asc,
    read=read_asc,
  ),
  eyelink_edf.FORMAT,
)
