"""Procedurally drawn faces whose expression follows the displayed emotion over time."""

import dataclasses

import cv2
import numpy as np

from tfds_emer.sim.config import SimConfig

ACTIONS = (
  "mouth_curve",
  "mouth_open",
  "mouth_width",
  "brow_raise",
  "brow_tilt",
  "eye_open",
  "nose_wrinkle",
)
# Apex action parameters at full intensity (3), in EMOTIONS order. brow_tilt > 0 lifts the
# inner brow ends (sadness, fear), < 0 pulls them down into a frown (anger).
APEX = np.array(
  [
    [1.0, 0.35, 0.35, 0.1, 0.0, -0.35, 0.0],  # happiness
    [-0.8, 0.0, -0.1, -0.1, 1.0, -0.45, 0.0],  # sadness
    [-0.35, 0.55, 0.35, 0.9, 0.6, 0.9, 0.0],  # fear
    [0.0, 1.0, -0.35, 1.0, 0.0, 0.9, 0.0],  # surprise
    [-0.55, 0.15, -0.1, -0.5, -0.3, -0.5, 1.0],  # disgust
    [-0.35, 0.0, -0.25, -0.7, -1.0, 0.2, 0.3],  # anger
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # neutral
  ]
)
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
_S = 1 << _SHIFT


@dataclasses.dataclass(frozen=True)
class Appearance:
  """A subject's look: geometry, colours, lighting, camera noise."""

  head_w: float
  head_h: float
  eye_dx: float
  eye_y: float
  mouth_y: float
  mouth_w: float
  skin: tuple[float, float, float]  # BGR
  hair: tuple[float, float, float]
  background: tuple[float, float, float]
  iris: tuple[float, float, float]
  light_dir: float  # -1 left … 1 right
  noise: float
  resting: np.ndarray  # the subject's resting action offsets


def appearance(cfg: SimConfig, rng: np.random.Generator) -> Appearance:
  tone = rng.uniform(0.25, 1.0)
  skin = (60 + 150 * tone, 90 + 130 * tone, 130 + 110 * tone)
  hair_level = rng.uniform(15, 120)
  return Appearance(
    head_w=rng.uniform(33, 39),
    head_h=rng.uniform(43, 49),
    eye_dx=rng.uniform(13, 16),
    eye_y=rng.uniform(-9, -5),
    mouth_y=rng.uniform(22, 27),
    mouth_w=rng.uniform(11, 14),
    skin=skin,
    hair=(hair_level * rng.uniform(0.6, 1.0), hair_level * rng.uniform(0.7, 1.0), hair_level),
    background=tuple(rng.uniform(40, 200, 3)),
    iris=tuple(rng.uniform(20, 120, 3)),
    light_dir=rng.uniform(-1, 1),
    noise=rng.uniform(*cfg.face_noise),
    resting=rng.normal(0, 0.08, len(ACTIONS)),
  )


def envelope(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
  """Onset–apex–offset time course in [0, 1] at clip times in [0, 1]."""
  onset = rng.uniform(0.05, 0.3)
  rise = rng.uniform(0.1, 0.2)
  hold = rng.uniform(0.25, 0.45)
  fall = rng.uniform(0.1, 0.25)
  residual = rng.uniform(0.1, 0.4)
  up = np.clip((times - onset) / rise, 0, 1)
  down = np.clip((times - onset - rise - hold) / fall, 0, 1)
  return _smooth(up) * (1 - (1 - residual) * _smooth(down))


def _smooth(x):
  return x * x * (3 - 2 * x)


def _pt(x, y):
  return int(round(x * _S)), int(round(y * _S))


def _bezier(p0, p1, p2, n=12):
  t = np.linspace(0, 1, n)[:, None]
  pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(p1) + t**2 * np.array(p2)
  return np.round(pts * _S).astype(np.int32)


def draw(app: Appearance, act: np.ndarray, size: int, offset=(0.0, 0.0), light=0.0) -> np.ndarray:
  """One BGR frame of a face with action parameters `act` (see ACTIONS)."""
  curve, mouth_open, width, raise_, tilt, eye_open, wrinkle = act + app.resting
  c = size / 112.0
  img = np.empty((size, size, 3), np.float32)
  img[:] = app.background
  cx, cy = size / 2 + offset[0] * c, size / 2 + 4 * c + offset[1] * c
  hw, hh = app.head_w * c, app.head_h * c
  aa = cv2.LINE_AA
  cv2.ellipse(
    img, _pt(cx, cy - 6 * c), _pt(hw + 3 * c, hh + 2 * c), 0, 180, 360, app.hair, -1, aa, _SHIFT
  )
  for side in (-1, 1):
    cv2.ellipse(
      img, _pt(cx + side * hw, cy + 2 * c), _pt(5 * c, 9 * c), 0, 0, 360, app.skin, -1, aa, _SHIFT
    )
  cv2.ellipse(img, _pt(cx, cy), _pt(hw, hh), 0, 0, 360, app.skin, -1, aa, _SHIFT)
  cv2.ellipse(
    img, _pt(cx, cy - hh + 6 * c), _pt(hw * 0.95, 12 * c), 0, 180, 360, app.hair, -1, aa, _SHIFT
  )
  dark = tuple(0.35 * v for v in app.skin)
  brow_col = tuple(0.8 * v for v in app.hair)
  ey = cy + app.eye_y * c
  for side in (-1, 1):
    ex = cx + side * app.eye_dx * c
    eh = max(0.4, 3.6 * (1 + 0.6 * eye_open)) * c
    cv2.ellipse(img, _pt(ex, ey), _pt(6.5 * c, eh), 0, 0, 360, (235, 235, 235), -1, aa, _SHIFT)
    r = min(3.2 * c, eh)
    cv2.ellipse(img, _pt(ex, ey), _pt(3.2 * c, r), 0, 0, 360, app.iris, -1, aa, _SHIFT)
    cv2.ellipse(
      img, _pt(ex, ey), _pt(1.4 * c, min(1.4 * c, eh)), 0, 0, 360, (15, 15, 15), -1, aa, _SHIFT
    )
    cv2.ellipse(img, _pt(ex, ey), _pt(6.5 * c, eh), 0, 180, 360, dark, max(1, int(c)), aa, _SHIFT)
    brow_y = ey - (7.5 + 4.5 * raise_) * c
    inner = (ex - side * 5.5 * c, brow_y - 3.5 * tilt * c)
    outer = (ex + side * 7 * c, brow_y + 1.5 * c + 1.0 * tilt * c)
    mid = (ex + side * 0.5 * c, brow_y - 1.5 * c)
    cv2.polylines(
      img, [_bezier(inner, mid, outer)], False, brow_col, max(2, int(2.4 * c)), aa, _SHIFT
    )
  nose_tip = cy + 10 * c
  cv2.polylines(
    img,
    [_bezier((cx - 1 * c, ey + 3 * c), (cx - 3 * c, nose_tip - 3 * c), (cx - 4 * c, nose_tip))],
    False,
    dark,
    1,
    aa,
    _SHIFT,
  )
  cv2.ellipse(img, _pt(cx, nose_tip), _pt(5 * c, 2.5 * c), 0, 0, 180, dark, 1, aa, _SHIFT)
  if wrinkle > 0.15:
    for dx in (-2.5, 0, 2.5):
      y0 = ey + 1 * c
      cv2.line(
        img,
        _pt(cx + dx * c - 1.5 * c, y0),
        _pt(cx + dx * c + 1.5 * c, y0 + 2 * c * wrinkle),
        dark,
        1,
        aa,
        _SHIFT,
      )
  my = cy + app.mouth_y * c - 2.5 * wrinkle * c
  mw = app.mouth_w * (1 + 0.35 * width) * c
  corner_y = my - 5.5 * curve * c
  up_mid = (cx, my - 1.5 * mouth_open * c + 1.5 * curve * c)
  low_mid = (cx, my + (11 * mouth_open + 2.5 * max(curve, 0)) * c)
  left, right = (cx - mw, corner_y), (cx + mw, corner_y)
  lip = (90, 80, 170) if app.skin[2] > 150 else tuple(0.6 * v for v in app.skin)
  if mouth_open > 0.08:
    poly = np.concatenate([_bezier(left, up_mid, right), _bezier(right, low_mid, left)])
    cv2.fillPoly(img, [poly], (40, 20, 45), aa, _SHIFT)
    if curve > 0.3:
      teeth = np.concatenate(
        [_bezier(left, up_mid, right), _bezier(right, (cx, up_mid[1] + 3 * c), left)]
      )
      cv2.fillPoly(img, [teeth], (240, 240, 240), aa, _SHIFT)
    cv2.polylines(img, [poly], True, lip, max(1, int(1.5 * c)), aa, _SHIFT)
  else:
    cv2.polylines(
      img,
      [_bezier(left, ((cx, my + 4 * curve * c)), right)],
      False,
      lip,
      max(2, int(2.2 * c)),
      aa,
      _SHIFT,
    )
  gradient = 1 + light * np.linspace(-app.light_dir, app.light_dir, size, dtype=np.float32)
  return img * gradient[None, :, None]


def render(
  cfg: SimConfig,
  app: Appearance,
  rng: np.random.Generator,
  display: int,
  intensity: float,
  times: np.ndarray,
) -> np.ndarray:
  """RGB uint8 frames (len(times), size, size, 3) of a face displaying `display`."""
  amp = APEX[display] * intensity / 3 * envelope(rng, times)[:, None]
  motion = np.cumsum(rng.normal(0, cfg.head_motion_px, (len(times), 2)), axis=0) * 0.5
  roll = np.cumsum(rng.normal(0, cfg.head_roll_deg / 3, len(times)))
  light = 0.15 + cfg.lighting_drift * np.sin(2 * np.pi * (times + rng.random()))
  size = cfg.face_size
  frames = np.empty((len(times), size, size, 3), np.uint8)
  for i in range(len(times)):
    img = draw(app, amp[i], size, motion[i], light[i])
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), roll[i], 1.0)
    img = cv2.warpAffine(img, rot, (size, size), borderMode=cv2.BORDER_REPLICATE)
    img += rng.normal(0, app.noise, img.shape).astype(np.float32)
    frames[i] = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
  return frames
