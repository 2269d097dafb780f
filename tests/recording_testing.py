"""A real face on video: scikit-image's astronaut photograph moved, scaled and re-lit."""

import cv2
import numpy as np

# Where OpenCV's frontal-face cascade finds the face in skimage.data.astronaut() (512×512).
FACE_CENTRE, FACE_SIDE = (224.5, 113.5), 95


def astronaut_frames(num: int, size=(320, 240), seed: int = 0):
  """(frames BGR, true face centres (num, 2), true face sides (num,)) of a moving face."""
  from skimage import data

  photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR).astype(np.float32)
  w, h = size
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  background = np.stack([60 + 80 * xx / w, 90 + 40 * yy / h, 120 - 50 * xx / w], -1)
  t = np.linspace(0, 1, num)
  scale = 0.75 + 0.25 * np.sin(2 * np.pi * t)  # face 53 to 95 px wide
  light = 0.7 + 0.5 * t  # dim to bright
  frames, centres = [], []
  for k in range(num):
    s = scale[k] * 0.75 * h / 240
    centre = (w / 2 + w / 6 * np.sin(3 * np.pi * t[k]), h / 2 + h / 12 * np.cos(2 * np.pi * t[k]))
    m = np.array([[s, 0, centre[0] - s * FACE_CENTRE[0]], [0, s, centre[1] - s * FACE_CENTRE[1]]])
    warped = cv2.warpAffine(photo, m, (w, h), borderValue=(-1, -1, -1))
    inside = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), m, (w, h)) > 0.5
    frame = np.where(inside[..., None], warped, background) * light[k]
    frame += rng.normal(0, 3, frame.shape)
    frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    centres.append(centre)
  return frames, np.array(centres), FACE_SIDE * scale * 0.75 * h / 240


def write_video(path, frames, fps: float = 30.0) -> None:
  h, w = frames[0].shape[:2]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
  for frame in frames:
    writer.write(frame)
  writer.release()
