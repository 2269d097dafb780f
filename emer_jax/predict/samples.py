"""A built dataset sample written back as a recording, to try predict without one of your own.

The frames become a folder of aligned PNG frames, the eye rows a Tobii Pro Lab-style export:
tab-separated with decimal commas, unit-bracketed headers for the gaze point and timestamp, the
text columns Pro Lab adds, and empty gaze cells where the tracker lost the eyes (the build
fills them again by interpolation).
"""

import pathlib

import cv2
import numpy as np

from emer_jax.predict.recordings import Recording
from tfds_emer import eye_export
from tfds_emer.fake_release import eye_table

# Pro Lab's unit-bracketed spelling of columns whose plain name the release uses.
PRO_LAB_HEADERS = {
  "Recording timestamp": "Recording timestamp [ms]",
  "Gaze point X": "Gaze point X [DACS px]",
  "Gaze point Y": "Gaze point Y [DACS px]",
}
_VALIDITY_LEFT = eye_export.COLUMNS.index("Validity left")


def write_recording(example: dict, folder, recording_id: str) -> Recording:
  """Writes `folder`/<id>/ (frames) and `folder`/<id>.tsv (eye export); returns the Recording."""
  folder = pathlib.Path(folder)
  frames = folder / recording_id
  frames.mkdir(parents=True, exist_ok=True)
  for i, frame in enumerate(example["face"]):
    cv2.imwrite(str(frames / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  rows = np.asarray(example["eye"], np.float64)
  gaze = [eye_export.COLUMNS.index(c) for c in eye_export.GAZE_COLUMNS]
  lost = rows[:, _VALIDITY_LEFT] == 0
  rows[np.ix_(lost, gaze)] = np.nan
  table = eye_table(recording_id, 0, rows).rename(columns=PRO_LAB_HEADERS)
  path = folder / f"{recording_id}.tsv"
  table.to_csv(path, sep="\t", decimal=",", index=False, na_rep="", float_format="%.9g")
  return Recording(recording_id, path, frames=frames)
