"""Turns a sample's raw modalities and labels into a TFDS example (shared by sim and release)."""

import numpy as np

from tfds_emer import eye_export


def sample_frames(frames, num: int) -> np.ndarray:
  """`num` frames sampled uniformly over the clip (repeating frames of short clips)."""
  idx = np.round(np.linspace(0, len(frames) - 1, num)).astype(int)
  return np.stack([np.asarray(frames[i]) for i in idx])


def make_example(
  *,
  frames,
  eye_raw: np.ndarray,
  gaze_cols: tuple[int, int],
  timestamps_ms: np.ndarray,
  labels: dict,
  num_frames: int,
  screen=eye_export.SCREEN_PX,
) -> dict:
  """The example dict; `eye_raw` is the (rows, 39) export with NaN for empty cells."""
  gaze_raw = eye_raw[:, list(gaze_cols)]
  eye = eye_export.fill_invalid(eye_raw)
  return {
    "face": sample_frames(frames, num_frames),
    "eye": eye,
    "gaze": eye[:, list(gaze_cols)],
    "fixation_map": eye_export.fixation_map(gaze_raw, timestamps_ms, screen),
    **labels,
  }
