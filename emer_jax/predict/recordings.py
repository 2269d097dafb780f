"""A recording (a face video or aligned frames, and an eye-tracker export) as model inputs.

Faces and eye rows go through the dataset's own preprocessing (tfds_emer: the face crops of
`tfds_emer.faces`, the export parser `release.read_eye`, `example.make_example`) and then the
evaluation sampler, so a recording is seen as a built sample would be.
"""

import dataclasses
import pathlib

import numpy as np

from emer_jax.predict.model import Settings
from tfds_emer import example as example_lib
from tfds_emer import face_media, faces, release
from tfds_emer import release_layout as layout
from tfds_emer.release import ReleaseError


class RecordingError(ReleaseError):
  """A recording given to predict cannot be read: one line per problem, each starting with the
  file at fault."""

  def __init__(self, problems):
    self.problems = list(problems)
    ValueError.__init__(self, "\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class Recording:
  id: str
  eye_export: pathlib.Path
  video: pathlib.Path | None = None
  frames: pathlib.Path | None = None  # a folder of aligned face frames


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A recording's model inputs and what the report and picture show of it."""

  inputs: dict  # one sample: face (T, H, W, 3) uint8, eye, gaze, fixation_map
  example: dict  # the sample as the dataset would store it
  gaze_raw: np.ndarray  # (rows, 2) screen pixels, NaN where invalid
  info: dict  # id, frames_total, frames_with_face, eye_rows_total, eye_rows_valid, warnings


def find_recordings(input_dir) -> list[Recording]:
  """Recordings in `input_dir`, matched by ID: an eye export `<ID>.tsv|.csv|.xlsx` and a face
  video `<ID>.mp4|…` or a folder of aligned frames `<ID>/`, side by side or in the release's
  folders (`eye_movement data/`, `face video/`, `face_light_align image/`)."""
  root = pathlib.Path(input_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"--input_dir {root} is not a folder.")
  eye_dirs = [root, root / layout.EYE_DIR]
  exports = sorted(
    p for d in eye_dirs if d.is_dir() for p in d.iterdir() if p.suffix in layout.EYE_SUFFIXES
  )
  recordings, problems = [], []
  for eye in exports:
    rid = eye.stem
    frames = next(
      (d / rid for d in (root, root / layout.FACE_FRAMES_DIR) if (d / rid).is_dir()), None
    )
    video = next(
      (
        d / f"{rid}{s}"
        for d in (root, root / layout.FACE_VIDEO_DIR)
        for s in layout.VIDEO_SUFFIXES
        if (d / f"{rid}{s}").exists()
      ),
      None,
    )
    if frames is None and video is None:
      problems.append(f"{eye}: no face video {rid}.mp4 (or .avi, .mov, .mkv) nor frames {rid}/.")
      continue
    recordings.append(Recording(rid, eye, video=None if frames else video, frames=frames))
  if problems:
    raise RecordingError(problems)
  if not recordings:
    raise RecordingError(
      [f"{root}: no eye export (<ID>.tsv, .csv or .xlsx) here or in '{layout.EYE_DIR}/'."]
    )
  return recordings


def _faces(recording: Recording, settings: Settings):
  """(crops, frames_total, frames_with_face) of the recording's faces."""
  if recording.frames is not None:
    count = sum(1 for p in recording.frames.iterdir() if p.suffix.lower() in layout.FRAME_SUFFIXES)
    crops = face_media.read_faces(recording.frames, None, settings.face_frames, settings.face_size)
    return crops, count, count
  video = face_media.read_video(recording.video)
  try:
    found = faces.face_crops(video, settings.face_frames, settings.face_size)
  except faces.FaceError as e:
    raise RecordingError([f"{recording.video}: {e}"]) from e
  return found.crops, found.frames_total, found.frames_with_face


def load(recording: Recording, settings: Settings, mapping: dict | None = None) -> Loaded:
  """Reads and preprocesses one recording; raises RecordingError naming the file at fault."""
  mapping = mapping or {}
  try:
    export = release.read_eye(recording.eye_export, mapping)
    crops, total, with_face = _faces(recording, settings)
  except RecordingError:
    raise
  except ReleaseError as e:  # the release reader's, which names the file at fault
    raise RecordingError(e.problems) from None
  example = example_lib.make_example(
    frames=crops,
    eye_raw=export.values,
    gaze_cols=export.gaze_cols,
    timestamps_ms=export.timestamps_ms,
    labels={},
    num_frames=settings.face_frames,
    screen=tuple(mapping.get("screen_px", settings.screen_px)),
  )
  inputs = settings.sampler((0, example))
  gaze_raw = export.values[:, list(export.gaze_cols)]
  valid = int(np.isfinite(gaze_raw).all(axis=1).sum())
  warnings = []
  if with_face < total:
    warnings.append(f"{total - with_face} of {total} frames had no face and were skipped.")
  if with_face < settings.face_frames:
    warnings.append(
      f"{with_face} frame{'s' if with_face != 1 else ''} with a face, fewer than the "
      f"{settings.face_frames} a sample holds: frames are repeated."
    )
  if export.dropped:
    warnings.append(f"Columns {list(export.dropped)} are not numeric and were left out.")
  if valid < len(gaze_raw) / 2:
    warnings.append(f"Only {valid} of {len(gaze_raw)} eye rows have a valid gaze point.")
  if len(gaze_raw) < settings.sampler.num_eye_rows:
    warnings.append(
      f"{len(gaze_raw)} eye rows, fewer than the {settings.sampler.num_eye_rows} the model "
      "reads: rows are repeated."
    )
  info = {
    "id": recording.id,
    "frames_total": int(total),
    "frames_with_face": int(with_face),
    "eye_rows_total": len(gaze_raw),
    "eye_rows_valid": valid,
    "warnings": warnings,
  }
  return Loaded(inputs, example, gaze_raw, info)
