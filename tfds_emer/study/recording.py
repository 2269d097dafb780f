"""One recording of a study: its eye data, its face clip, and the example they make together.

Eye data and video start together; the shorter of the two bounds the example: the longer is
cut to the shorter's duration (eye rows after it, and frames after it, are left out). A video
is a raw recording whose faces are found and cropped (`tfds_emer.faces`) unless study.json says
`"face_video": "aligned"`; a frame folder holds aligned face frames, used as they are.
"""

import dataclasses
import math
import pathlib
import re

import cv2
import numpy as np

from tfds_emer import eye_export, face_media, faces, release
from tfds_emer.example import sample_frames
from tfds_emer.study.layout import FRAME_SUFFIXES, Entry, Study, StudyError
from tfds_emer.trackers import registry, schema
from tfds_emer.vocabulary import FACE_SIZE, MAP_SIZE

FACE_SAMPLE = 16  # frames of a raw video searched for a face by `validate`
UNIT_SCREEN = (1.0, 1.0)  # gaze is a fraction of the screen
# Eye and video durations "differ a lot" (a warning) when by more than either of these.
DURATION_GAP_S, DURATION_GAP_SHARE = 2.0, 0.10


def _natural(path: pathlib.Path):
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: pathlib.Path) -> list:
  """The face frames of a frame folder, in natural order of their names (2 before 10)."""
  return sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural)


def read_eye(entry: Entry, study: Study) -> schema.Recording:
  """The recording's eye data in the common schema; raises RecordingError naming the file."""
  return read_eye_file(entry.eye, study.named_format(entry.eye), study.eye_options)


def read_eye_file(path: pathlib.Path, fmt: str | None, options) -> schema.Recording:
  """An eye file or folder in the common schema, read as format `fmt` (None: detected from its
  content, else the generic reader when `options("generic")` maps columns); `options(fmt)` is
  the format's options. Raises RecordingError naming the file."""
  if fmt is None:
    try:
      fmt = registry.detect(path).name
    except registry.UnknownFormat:
      if "columns" not in options("generic"):
        raise
      fmt = "generic"  # the options map columns for files no other format recognises
  recording = registry.read(path, fmt, options(fmt))
  if recording.rows == 0:
    raise schema.RecordingError(f"{path}: no eye-tracker rows ({fmt} format).")
  return recording


def eye_streams(recording: schema.Recording) -> dict:
  """An example's `eye` (the filled schema and its measured flags), `gaze` (a fraction of the
  screen) and `fixation_map` (from the measured gaze) of a recording in the common schema."""
  eye = schema.filled(recording)
  gaze_cols = [schema.INDEX["gaze_x"], schema.INDEX["gaze_y"]]
  return {
    "eye": eye,
    "gaze": eye[:, gaze_cols],
    "fixation_map": eye_export.fixation_map(
      recording.values[:, gaze_cols], recording.column("time_ms"), UNIT_SCREEN, MAP_SIZE
    ),
  }


def fixations(recording: schema.Recording) -> int | None:
  """Number of fixations: runs of fixation rows (None if the tracker gives no events)."""
  event = recording.column("event")
  if not np.isfinite(event).any():
    return None
  on = (event == schema.FIXATION).astype(np.int8)
  return int(on[0] + np.sum(np.diff(on) == 1)) if len(on) else 0


@dataclasses.dataclass(frozen=True)
class Clip:
  """What validate learns of a recording's faces without decoding every frame."""

  frames: int
  fps: float
  faces: str  # e.g. "14/16 found", "aligned"
  faces_ok: bool

  @property
  def duration_s(self) -> float:
    return self.frames / self.fps if self.fps > 0 else 0.0


def probe_clip(entry: Entry, study: Study, sample: int = FACE_SAMPLE) -> Clip:
  """Frames, rate and faces found on `sample` frames of a raw video; raises StudyError."""
  if entry.frames is not None:
    files = frame_files(entry.frames)
    if not files:
      raise StudyError([f"{entry.frames}: no face frame ({', '.join(FRAME_SUFFIXES)})."])
    if cv2.imread(str(files[0])) is None:
      raise StudyError([f"{files[0]}: unreadable face frame."])
    return Clip(len(files), study.frame_rate, "aligned frames", True)
  cap = cv2.VideoCapture(str(entry.video))
  declared, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
  want = set(np.round(np.linspace(0, max(declared - 1, 0), sample)).astype(int).tolist())
  picked, count = [], 0
  while cap.grab():
    if count in want:
      picked.append(cap.retrieve()[1])
    count += 1
  cap.release()
  if count == 0 or not picked:
    raise StudyError([f"{entry.video}: unreadable face video (no frame could be decoded)."])
  if fps <= 0:
    raise StudyError([f"{entry.video}: the video states no frame rate."])
  if study.aligned_video:
    return Clip(count, fps, "aligned video", True)
  found = sum(faces.detect_face(frame) is not None for frame in picked)
  ok = found >= faces.MIN_FACE_FRACTION * len(picked)
  return Clip(count, fps, f"{found}/{len(picked)} found", ok)


def duration_gap(eye_s: float, video_s: float) -> bool:
  """Whether eye and video durations differ a lot (a warning)."""
  gap = abs(eye_s - video_s)
  return gap > DURATION_GAP_S or gap > DURATION_GAP_SHARE * max(eye_s, video_s)


def _as_rgb(frames_bgr) -> np.ndarray:
  out = []
  for f in frames_bgr:
    if f.shape[:2] != (FACE_SIZE, FACE_SIZE):
      f = cv2.resize(f, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
  return np.stack(out)


def _kept(count: int, fps: float, seconds: float) -> int:
  """Frames that start within `seconds` of the clip's start (at least one)."""
  return max(1, min(count, math.floor(seconds * fps + 1e-6) + 1))


def read_faces(entry: Entry, study: Study, num: int, seconds: float | None, warnings: list):
  """(num, 112, 112, 3) RGB faces sampled uniformly over the clip's first `seconds`."""
  if entry.frames is not None:
    files = frame_files(entry.frames)
    if not files:
      raise StudyError([f"{entry.frames}: no face frame ({', '.join(FRAME_SUFFIXES)})."])
    n = len(files) if seconds is None else _kept(len(files), study.frame_rate, seconds)
    picked = []
    for path in sample_frames(np.arange(n), num):
      frame = cv2.imread(str(files[int(path)]))
      if frame is None:
        raise StudyError([f"{files[int(path)]}: unreadable face frame."])
      picked.append(frame)
    return _as_rgb(picked)
  try:
    decoded = face_media.read_video(entry.video, warnings)
  except release.ReleaseError as e:
    raise StudyError(e.problems) from e
  if seconds is not None:
    decoded = decoded[: _kept(len(decoded), video_fps(entry.video), seconds)]
  if study.aligned_video:
    return _as_rgb(sample_frames(decoded, num))
  try:
    return faces.face_crops(decoded, num, FACE_SIZE).crops
  except faces.FaceError as e:
    raise StudyError([f"{entry.video}: {e}"]) from e


def video_fps(path: pathlib.Path) -> float:
  cap = cv2.VideoCapture(str(path))
  fps = float(cap.get(cv2.CAP_PROP_FPS))
  cap.release()
  if fps <= 0:
    raise StudyError([f"{path}: the video states no frame rate."])
  return fps


def clip_seconds(entry: Entry, study: Study) -> float:
  """The face clip's duration: frames over their rate."""
  if entry.frames is not None:
    return len(frame_files(entry.frames)) / study.frame_rate
  cap = cv2.VideoCapture(str(entry.video))
  count, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
  cap.release()
  return count / fps if fps > 0 else 0.0


def trimmed(recording: schema.Recording, seconds: float) -> schema.Recording:
  """The recording's rows up to `seconds` after its first row."""
  t = recording.column("time_ms")
  inside = np.flatnonzero(np.isfinite(t) & (t - np.nanmin(t) <= seconds * 1000 + 1e-6))
  last = inside[-1] + 1 if len(inside) else recording.rows
  return dataclasses.replace(recording, values=recording.values[:last])


def make_example(entry: Entry, study: Study, face_frames: int, warnings: list):
  """(TFDS example, the eye data's units) of one recording; raises StudyError or
  RecordingError naming the file."""
  recording = read_eye(entry, study)
  seconds = min(recording.duration_ms / 1000, clip_seconds(entry, study))
  recording = trimmed(recording, seconds)
  example = {
    "face": read_faces(entry, study, face_frames, seconds, warnings),
    **eye_streams(recording),
    "sample_id": entry.id,
    "subject_id": np.int32(study.subjects.index(entry.subject)),
    "fold": np.int32(entry.fold),
    **{
      lab.name: entry.labels[lab.name] if lab.is_class else np.float32(entry.labels[lab.name])
      for lab in study.labels
    },
  }
  return example, dict(recording.units)
