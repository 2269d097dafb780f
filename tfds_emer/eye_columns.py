"""The model's 39 eye columns and the headers Tobii Pro Lab gives them.

`COLUMNS` are the reference model's eye columns, in the order the EMER exports hold them;
`PROLAB_HEADERS` are Pro Lab's unit-bracketed names for the same columns; `LOOKUP` takes an
export's header, in either style, to its column and the power of ten to that column's unit.
"""

import re

import numpy as np

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
POWER_OF_TEN = {"s": 0, "ms": -3, "us": -6, "ns": -9}  # of a second
# Older Pro Lab versions call the event duration "Gaze event duration".
_ALIASES = {"Gaze event duration": ("gaze event duration",)}
TEXT_CODES = {
  "Validity left": VALIDITY_CODES,
  "Validity right": VALIDITY_CODES,
  "Eye movement type code": MOVEMENT_CODES,
}


def split_header(header) -> tuple[str, str]:
  """('gaze point x', 'dacspx') from 'Gaze point X [DACS px]' (or '(DACSpx)', or no unit)."""
  m = re.fullmatch(r"\s*(.*?)\s*(?:\[([^\]]*)\]|\(([^)]*)\))?\s*", str(header))
  base, unit = m.group(1), m.group(2) or m.group(3) or ""
  unit = re.sub(r"\s", "", unit.lower()).replace("μ", "u").replace("µ", "u")
  return re.sub(r"\s+", " ", base.lower()), unit


def _table() -> dict:
  """(base, unit) of an accepted header → (column index, power of ten to the column's unit)."""
  table = {}
  for j, (name, prolab) in enumerate(zip(COLUMNS, PROLAB_HEADERS, strict=True)):
    bases = {split_header(name)[0], split_header(prolab)[0], *_ALIASES.get(name, ())}
    if name in UNITS:
      own = POWER_OF_TEN[UNITS[name]]
      units = {"": 0} | {u: p - own for u, p in POWER_OF_TEN.items()}
    else:
      units = {split_header(name)[1]: 0, split_header(prolab)[1]: 0}
    table.update({(b, u): (j, f) for b in bases for u, f in units.items()})
  return table


LOOKUP = _table()


def in_unit(cells: np.ndarray, power: int) -> np.ndarray:
  """`cells` times 10**power; dividing by an exact power of ten keeps whole μs exact in ms."""
  return cells * 10.0**power if power >= 0 else cells / 10.0**-power
