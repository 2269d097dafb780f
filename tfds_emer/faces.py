"""Face crops from raw video, as the model is trained on: found, eyes level, 112×112, lit evenly.

Each frame is searched for a face with OpenCV's frontal-face Haar cascade (its weights ship in
opencv-python-headless 4.x; 5.x dropped them), on a copy at most `DETECT_WIDTH` pixels wide. Of
the frames with a face, `num` are taken uniformly over the clip; in each, the eye cascade looks
for both eyes in the upper half of the face and, when it finds them, the crop is rotated by the
angle of the line between them so that they are level. The crop is the detected square widened
by `MARGIN`, resized to `size`, and its lighting normalised by CLAHE (contrast-limited adaptive
histogram equalisation) on the L channel of CIE L*a*b*, colours kept.

What it expects: a roughly frontal face, about a tenth of the frame's width or more, one person
in view (the largest face is used). Frames without a face are counted and skipped.
"""

import dataclasses
import functools
import math

import cv2
import numpy as np

DETECT_WIDTH = 320  # frames are searched at this width at most (detection cost ∝ pixels)
MIN_FACE_FRACTION = 0.5  # fewer frames with a face than this share is an error
MARGIN = 1.2  # crop side / detected face side
CLAHE_CLIP, CLAHE_TILES = 2.0, (4, 4)


class FaceError(ValueError):
  """A video in which too few frames show a face."""


@dataclasses.dataclass(frozen=True)
class Faces:
  crops: np.ndarray  # (num, size, size, 3) uint8 RGB
  boxes: list  # per frame of the clip: (x, y, w, h) of the face in frame pixels, or None
  frames_total: int
  frames_with_face: int


@functools.cache
def _cascade(name: str) -> cv2.CascadeClassifier:
  path = cv2.data.haarcascades + name
  cascade = cv2.CascadeClassifier(path)
  if cascade.empty():
    raise RuntimeError(
      f"OpenCV {cv2.__version__} has no Haar cascade {path}; install opencv-python-headless 4.x "
      "(5.x no longer ships the cascades)."
    )
  return cascade


def _gray(image: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def detect_face(frame_bgr: np.ndarray, near=None):
  """(x, y, w, h) of the largest face in a BGR frame, in its pixels; None if there is none.

  With `near` (the box found in the previous frame), only a window twice its size around it is
  searched, for faces of 0.7 to 1.4 times its side: tracking costs a few milliseconds a frame.
  """
  gray = _gray(frame_bgr)
  x0 = y0 = 0
  if near is None:
    scale = min(1.0, DETECT_WIDTH / gray.shape[1])
    lo, hi = max(24, int(0.1 * gray.shape[1] * scale)), 0
  else:
    nx, ny, nw, nh = near
    cx, cy, side = nx + nw / 2, ny + nh / 2, max(nw, nh)
    x0, y0 = max(0, int(cx - side)), max(0, int(cy - side))
    gray = gray[y0 : int(cy + side), x0 : int(cx + side)]
    scale = min(1.0, 40 / side)  # the face about 40 px wide (the cascade starts at 24)
    lo, hi = int(0.7 * side * scale), int(1.4 * side * scale) + 1
  if scale < 1.0:
    gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
    gray, scaleFactor=1.1, minNeighbors=5, minSize=(lo, lo), maxSize=(hi, hi) if hi else (0, 0)
  )
  if len(found) == 0:
    return None
  x, y, w, h = max(found, key=lambda b: b[2] * b[3])
  return (
    int(round(x / scale)) + x0,
    int(round(y / scale)) + y0,
    int(round(w / scale)),
    int(round(h / scale)),
  )


def eye_angle(frame_bgr: np.ndarray, box) -> float:
  """Angle in degrees of the line from the left to the right eye; 0 unless both are found."""
  x, y, w, h = box
  upper = _gray(frame_bgr)[max(y, 0) : y + h // 2, max(x, 0) : x + w]
  if upper.size == 0:
    return 0.0
  scale = min(1.0, 160 / upper.shape[1])
  upper = cv2.resize(upper, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  side = max(8, upper.shape[1] // 8)
  eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
    upper, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
  )
  if len(eyes) < 2:
    return 0.0
  eyes = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
  (lx, ly), (rx, ry) = sorted((ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in eyes)
  if rx - lx < upper.shape[1] / 5:  # one eye found twice
    return 0.0
  return math.degrees(math.atan2(ry - ly, rx - lx))


def normalise_lighting(crop_bgr: np.ndarray) -> np.ndarray:
  """CLAHE on the L*a*b* lightness channel: evens out lighting, keeps colours."""
  lab = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2LAB)
  clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES)
  lab[..., 0] = clahe.apply(lab[..., 0])
  return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def align_face(frame_bgr: np.ndarray, box, size: int = 112) -> np.ndarray:
  """The face of `box`, eyes levelled, as a (size, size, 3) BGR crop with lighting normalised."""
  x, y, w, h = box
  centre = (x + w / 2, y + h / 2)
  side = MARGIN * max(w, h)
  # One affine map: rotate about the face centre so the eyes are level, scale, centre the crop.
  m = cv2.getRotationMatrix2D(centre, eye_angle(frame_bgr, box), size / side)
  m[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
  crop = cv2.warpAffine(
    frame_bgr, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
  )
  return normalise_lighting(crop)


def face_crops(
  frames_bgr, num: int, size: int = 112, min_fraction: float = MIN_FACE_FRACTION
) -> Faces:
  """`num` aligned RGB face crops taken uniformly over the frames in which a face is found.

  Raises FaceError, saying how many frames showed a face, when fewer than `min_fraction` do.
  """
  needed = max(1, math.ceil(min_fraction * len(frames_bgr)))
  boxes, found = [], []
  for i, frame in enumerate(frames_bgr):
    box = detect_face(frame, near=boxes[-1]) if boxes and boxes[-1] else None
    box = box or detect_face(frame)
    boxes.append(box)
    if box is not None:
      found.append(i)
    elif len(found) + len(frames_bgr) - i - 1 < needed:  # cannot reach `needed` any more
      raise FaceError(
        f"a face was found in {len(found)} of the first {i + 1} of {len(frames_bgr)} frames, so "
        f"in at most {len(found) + len(frames_bgr) - i - 1}; at least {needed} "
        f"({min_fraction:.0%}) are needed. Expected a roughly frontal face, at least a tenth of "
        "the frame wide."
      )
  picks = [found[i] for i in np.round(np.linspace(0, len(found) - 1, num)).astype(int)]
  crops = [
    cv2.cvtColor(align_face(frames_bgr[i], boxes[i], size), cv2.COLOR_BGR2RGB) for i in picks
  ]
  return Faces(np.stack(crops), boxes, len(boxes), len(found))
