"""A sample's face frames: aligned frame files, or a video decoded (and its faces cropped)."""

import pathlib
import re

import cv2
import numpy as np

from tfds_emer import faces
from tfds_emer import release_layout as layout
from tfds_emer.release import ReleaseError

# A video decoding fewer than this share of the frames its header declares is a defect; one
# decoding fewer than all of them is a warning (its frames are sampled from what decodes).
MIN_DECODED_SHARE = 0.9


def read_video(path: pathlib.Path, warnings: list | None = None) -> list:
  """Every frame of a video file, BGR; `warnings` collects a shortfall against its header."""
  cap = cv2.VideoCapture(str(path))
  declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
  frames = []
  while cap.isOpened():
    ok, frame = cap.read()
    if not ok:
      break
    frames.append(frame)
  cap.release()
  if not frames:
    raise ReleaseError([f"{path}: unreadable face video (no frame could be decoded)."])
  if len(frames) < declared:
    short = f"{path}: only {len(frames)} of the {declared} frames its header declares decode"
    if len(frames) < MIN_DECODED_SHARE * declared:
      raise ReleaseError(
        [
          f"{short} ({len(frames) / declared:.0%}, under {MIN_DECODED_SHARE:.0%}); the video "
          f"is truncated or damaged: replace it, or give its aligned frames in "
          f"'{layout.FACE_FRAMES_DIR}/{path.stem}/'."
        ]
      )
    if warnings is not None:
      warnings.append(f"{short}; frames are sampled from those that do.")
  return frames


def _natural_key(path: pathlib.Path):
  """`2.jpg` before `10.jpg`: digit runs compare as numbers."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def read_faces(
  frame_dir: pathlib.Path | None,
  video: pathlib.Path | None,
  num: int,
  size=112,
  warnings: list | None = None,
  aligned_video: bool = False,
):
  """`num` RGB frames (num, size, size, 3) sampled uniformly from frames or the video.

  Aligned frames are used as they are, in natural order of their names. A video is taken to be
  a raw recording, and its faces are found and cropped by `faces.face_crops`, unless
  `aligned_video` (mapping `"face_video": "aligned"`) says it holds aligned faces already.
  `warnings` collects a video's shortfall against its header.
  """
  files = []
  if frame_dir is not None and frame_dir.is_dir():
    files = [p for p in frame_dir.iterdir() if p.suffix.lower() in layout.FRAME_SUFFIXES]
    files.sort(key=_natural_key)
  if files:
    idx = np.round(np.linspace(0, len(files) - 1, num)).astype(int)
    frames = []
    for i in idx:
      img = cv2.imread(str(files[i]))
      if img is None:
        raise ReleaseError([f"{files[i]}: unreadable face frame."])
      frames.append(img)
  elif video is not None:
    decoded = read_video(video, warnings)
    if not aligned_video:
      try:
        return faces.face_crops(decoded, num, size).crops
      except faces.FaceError as e:
        raise ReleaseError([f"{video}: {e}"]) from e
    idx = np.round(np.linspace(0, len(decoded) - 1, num)).astype(int)
    frames = [decoded[i] for i in idx]
  else:
    where = frame_dir if frame_dir is not None else "face frames"
    raise ReleaseError([f"{where}: zero face frames and no face video for this sample."])
  out = [
    cv2.cvtColor(
      cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
      if f.shape[:2] != (size, size)
      else f,
      cv2.COLOR_BGR2RGB,
    )
    for f in frames
  ]
  return np.stack(out)
