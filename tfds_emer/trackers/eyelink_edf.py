"""SR Research EyeLink EDF files, read with eyelinkio (the optional extra `edf`).

eyelinkio numbers samples from 0 at the file's rate, so the gaps between recording blocks
close up; its events are moved onto the same clock.
"""

import contextlib
import os
import pathlib
import sys

import numpy as np

from tfds_emer.trackers.eyelink_rows import KINDS, Parsed, recording
from tfds_emer.trackers.registry import Format
from tfds_emer.trackers.schema import Recording, RecordingError

MAGIC = b"SR_RESEARCH"
EVENT_LISTS = {"fixations": KINDS["FIX"], "saccades": KINDS["SACC"], "blinks": KINDS["BLINK"]}


def detect_edf(path: pathlib.Path) -> bool:
  if not path.is_file():
    return False
  try:
    with open(path, "rb") as f:
      return f.read(len(MAGIC)) == MAGIC
  except OSError:
    return False


@contextlib.contextmanager
def _c_stdout_silenced():
  """edfapi prints 'loadEvents = 1' from C on each file; send file descriptor 1 to /dev/null."""
  sys.stdout.flush()
  saved = os.dup(1)
  try:
    with open(os.devnull, "wb") as null:
      os.dup2(null.fileno(), 1)
    yield
  finally:
    os.dup2(saved, 1)
    os.close(saved)


def parse_edf(path: pathlib.Path) -> Parsed:
  try:
    import eyelinkio
  except ImportError:
    raise RecordingError(
      f"{path}: an EyeLink EDF file; reading it needs eyelinkio: pip install emer_jax[edf] "
      "(or convert it to ASC with SR Research's edf2asc)"
    ) from None
  try:
    with _c_stdout_silenced():
      edf = eyelinkio.read_edf(str(path))
  except Exception as e:  # edfapi reports a damaged file in several ways
    raise RecordingError(f"{path}: eyelinkio cannot read this EDF file ({e})") from None
  info = edf["info"]
  fields = list(info["sample_fields"])
  samples = edf["samples"]
  step_ms = 1000.0 / float(info["sfreq"])
  eyes = {}
  for eye in ("left", "right"):
    names = [f"{n}_{eye}" for n in ("xpos", "ypos", "ps")]
    if info["eye"] != "BINOCULAR":
      names = [n.rsplit("_", 1)[0] for n in names] if info["eye"].startswith(eye.upper()) else []
    if names and all(n in fields for n in names):
      eyes[eye] = np.stack([samples[fields.index(n)] for n in names], axis=1)
  if not eyes:
    raise RecordingError(f"{path}: no gaze samples (fields {fields}, eye {info['eye']})")
  events = []
  for name, kind in EVENT_LISTS.items():
    for e in edf["discrete"].get(name, ()):
      x, y = (e["axp"], e["ayp"]) if name == "fixations" else (np.nan, np.nan)
      start, end = 1000.0 * e["stime"], 1000.0 * e["etime"]
      events.append((kind, "LR"[int(e["eye"])], start, end, end - start + step_ms, x, y))
  screen = info.get("screen_coords")
  return Parsed(
    time=1000.0 * np.asarray(edf["times"], dtype=float),
    eyes=eyes,
    events=events,
    screen=None if screen is None else (0.0, 0.0, float(screen[0]), float(screen[1])),
    pupil=str(info.get("ps_units", "")).removeprefix("PUPIL_") or None,
    has_events=any(name in edf["discrete"] for name in EVENT_LISTS),
  )


def read_edf(path: pathlib.Path, options: dict) -> Recording:
  return recording(path, parse_edf(path), options, "eyelink_edf")


FORMAT = Format(
  name="eyelink_edf",
  description="SR Research EyeLink EDF (needs the edf extra)",
  detect=detect_edf,
  read=read_edf,
  extra="edf",
)
