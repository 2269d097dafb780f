"""A recording (a face video or aligned frames, and an eye-tracker export) as model inputs.

Faces and eye rows go through the dataset's own preprocessing (tfds_emer: the face crops of
`tfds_emer.faces`, then for a model trained on EMER the Tobii export parser `release.read_eye`
and `example.make_example`; for a model trained on a study (the tracker schema's 22 eye
columns) any format of `tfds_emer.trackers`, detected from the file's content, and the study
build's `eye_streams`) and then the evaluation sampler, so a recording is seen as a built
sample would be. Unlike a study's build, the longer of eye data and video is not cut to the
shorter.
"""

import dataclasses
import pathlib

import numpy as np

from emer_jax.predict.model import Settings
from tfds_emer import example as example_lib
from tfds_emer import face_media, faces, release
from tfds_emer import release_layout as layout
from tfds_emer.release import ReleaseError
from tfds_emer.study import layout as study_layout
from tfds_emer.study import recording as study_recording
from tfds_emer.trackers import schema

# Eye exports beside the faces: tables (Tobii, iMotions, Gazepoint, generic), EyeLink ASC and
# EDF. In a study's `eye/` folder every file or folder is an export (iMotions .txt, Pupil Labs).
EYE_SUFFIXES = (*layout.EYE_SUFFIXES, ".asc", ".edf")


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
  gaze_raw: np.ndarray  # (rows, 2) on the `screen`, NaN where invalid
  info: dict  # id, frames_total, frames_with_face, eye_rows_total, eye_rows_valid, warnings
  screen: tuple | None = None  # the gaze's screen, (1, 1) for a fraction; None: the model's


def find_recordings(input_dir) -> list[Recording]:
  """Recordings in `input_dir`, matched by ID: an eye export `<ID>.<ext>` (.tsv, .csv, .xlsx,
  .asc, .edf) and a face video `<ID>.mp4|…` or a folder of aligned frames `<ID>/`, side by
  side, in the release's folders (`eye_movement data/`, `face video/`, `face_light_align
  image/`) or in a study's (`eye/`, where any file or folder is an export, `video/`,
  `frames/`)."""
  root = pathlib.Path(input_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"--input_dir {root} is not a folder.")
  exports = [
    p
    for d in (root, root / layout.EYE_DIR)
    if d.is_dir()
    for p in d.iterdir()
    if p.is_file() and p.suffix.lower() in EYE_SUFFIXES
  ]
  study_eye = root / study_layout.EYE_DIR
  if study_eye.is_dir():  # a study's folder: its labels.csv is no export
    exports = [p for p in exports if p != root / study_layout.LABEL_FILE]
    exports += [p for p in study_eye.iterdir() if not p.name.startswith(".")]
  frame_dirs = (root, root / layout.FACE_FRAMES_DIR, root / study_layout.FRAMES_DIR)
  video_dirs = (root, root / layout.FACE_VIDEO_DIR, root / study_layout.VIDEO_DIR)
  recordings, problems = [], []
  for eye in sorted(exports):
    rid = eye.name if eye.is_dir() else eye.stem
    frames = next((d / rid for d in frame_dirs if (d / rid).is_dir()), None)
    video = next(
      (
        d / f"{rid}{s}"
        for d in video_dirs
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
      [
        f"{root}: no eye export (<ID>.tsv, .csv, .xlsx, .asc or .edf) here, in "
        f"'{layout.EYE_DIR}/' or in '{study_layout.EYE_DIR}/'."
      ]
    )
  ids = [r.id for r in recordings]
  twice = sorted({i for i in ids if ids.count(i) > 1})
  if twice:
    raise RecordingError(
      [f"{root}: several eye exports for recording(s) {twice}; keep one per recording."]
    )
  return recordings


def reads_schema(settings: Settings) -> bool:
  """Whether the model reads the tracker schema (a study's 22 eye columns), not EMER's 39."""
  return len(settings.sampler.normalisation.eye_mean) == len(schema.COLUMNS)


def _format_options(mapping: dict):
  """`--mapping`'s options per format, as study.json gives them: `screen_px`, then
  `formats`: {format: {option: value}}."""

  def options(fmt: str) -> dict:
    given = mapping.get("formats", {}).get(fmt)
    screen = {"screen_px": list(mapping["screen_px"])} if "screen_px" in mapping else {}
    return screen | (given if isinstance(given, dict) else {})

  return options


def _schema_eye(recording: Recording, mapping: dict):
  """(eye, gaze and fixation map of an example, gaze as a fraction with NaN where invalid,
  (format, what its reader noted)) of any supported export."""
  try:
    read = study_recording.read_eye_file(recording.eye_export, None, _format_options(mapping))
  except schema.RecordingError as e:
    raise RecordingError([str(e)]) from None
  gaze = read.values[:, [schema.INDEX["gaze_x"], schema.INDEX["gaze_y"]]]
  return study_recording.eye_streams(read), gaze, (read.format, list(read.notes))


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
  if reads_schema(settings):
    streams, gaze_raw, eye = _schema_eye(recording, mapping)
    crops, total, with_face = _faces(recording, settings)
    example = {"face": example_lib.sample_frames(crops, settings.face_frames), **streams}
    return _loaded(recording, settings, example, gaze_raw, (total, with_face), eye, (1.0, 1.0))
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
  notes = [f"Columns {list(export.dropped)} are not numeric and were left out."] * bool(
    export.dropped
  )
  gaze_raw = export.values[:, list(export.gaze_cols)]
  return _loaded(recording, settings, example, gaze_raw, (total, with_face), ("tobii", notes))


def _loaded(recording, settings, example, gaze_raw, faces_found, eye, screen=None) -> Loaded:
  """The model inputs of `example` and what the report says of the recording; `eye` is (the
  export's format, what its reader noted)."""
  (total, with_face), (eye_format, notes) = faces_found, eye
  inputs = settings.sampler((0, example))
  valid = int(np.isfinite(gaze_raw).all(axis=1).sum())
  warnings = []
  if with_face < total:
    warnings.append(f"{total - with_face} of {total} frames had no face and were skipped.")
  if with_face < settings.face_frames:
    warnings.append(
      f"{with_face} frame{'s' if with_face != 1 else ''} with a face, fewer than the "
      f"{settings.face_frames} a sample holds: frames are repeated."
    )
  warnings += notes
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
    "eye_format": eye_format,
    "warnings": warnings,
  }
  return Loaded(inputs, example, gaze_raw, info, screen)
