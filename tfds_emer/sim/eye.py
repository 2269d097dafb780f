"""Eye behaviour that follows the GENUINE emotion, written as a Tobii-like export."""

import dataclasses

import numpy as np

from tfds_emer import eye_export as ex
from tfds_emer.sim.config import SimConfig

# Per emotion, in EMOTIONS order: median fixation (ms), saccade amplitude (px), blinks per
# minute, gaze dispersion (px), dwell offset from screen centre (x, y px).
EMOTION_EYES = np.array(
  [
    [260, 260, 18, 300, 0, -40],  # happiness: wide exploration
    [380, 130, 11, 150, 0, 150],  # sadness: long, low, narrow
    [200, 340, 27, 360, -60, -100],  # fear: short fixations, big jumps, many blinks
    [300, 380, 8, 420, 0, -60],  # surprise: wide, few blinks
    [220, 220, 24, 260, 260, 80],  # disgust: averted gaze
    [430, 170, 16, 170, 0, -20],  # anger: long, centred
    [300, 220, 14, 240, 0, 0],  # neutral
  ]
)


@dataclasses.dataclass(frozen=True)
class EyeBaseline:
  """A subject's gaze habits: multipliers on the emotion table, centre offset, pupil size."""

  fixation: float
  saccade: float
  blinks: float
  dispersion: float
  centre: tuple[float, float]
  pupil_mm: float
  eye_height_mm: float


def baseline(cfg: SimConfig, rng: np.random.Generator) -> EyeBaseline:
  s = cfg.subject_eye_spread
  return EyeBaseline(
    fixation=float(np.exp(rng.normal(0, s))),
    saccade=float(np.exp(rng.normal(0, s))),
    blinks=float(np.exp(rng.normal(0, 1.4 * s))),
    dispersion=float(np.exp(rng.normal(0, 0.8 * s))),
    centre=tuple(rng.normal(0, 60, 2)),
    pupil_mm=float(rng.normal(3.4, 0.35)),
    eye_height_mm=float(rng.normal(0, 15)),
  )


def _events(cfg, rng, params, duration_ms):
  """(start_ms, end_ms, type, x, y) events: fixations, saccades between them, blinks."""
  fix_ms, sacc_px, blinks_min, disp, cx, cy = params
  w, h = cfg.screen_px
  centre = np.array([w / 2 + cx, h / 2 + cy])
  pos = centre + rng.normal(0, disp / 2, 2)
  t, events = 0.0, []
  p_blink = blinks_min / 60 * fix_ms / 1000
  while t < duration_ms:
    dur = fix_ms * np.exp(rng.normal(0, 0.45))
    events.append((t, t + dur, ex.FIXATION, *pos))
    t += dur
    if rng.random() < p_blink:
      dur = rng.uniform(100, 300)
      events.append((t, t + dur, ex.EYES_NOT_FOUND, np.nan, np.nan))
      t += dur
    step = rng.normal(0, 1, 2)
    step *= sacc_px * np.exp(rng.normal(0, 0.4)) / (np.linalg.norm(step) + 1e-9)
    pull = (centre - pos) * np.clip(np.linalg.norm(pos - centre) / (disp + 1), 0, 1)
    new = np.clip(pos + step + 0.5 * pull, [0, 0], [w - 1, h - 1])
    dur = 20 + 0.06 * np.linalg.norm(new - pos)
    events.append((t, t + dur, ex.SACCADE, *new))
    pos, t = new, t + dur
  return events


def export(
  cfg: SimConfig,
  base: EyeBaseline,
  rng: np.random.Generator,
  genuine: int,
  arousal: float,
) -> np.ndarray:
  """The raw export (rows, 39) in `eye_export.COLUMNS` order, NaN where Tobii leaves cells empty."""
  noise = np.exp(rng.normal(0, cfg.sample_eye_noise, 4))
  fix_ms, sacc_px, blinks, disp, cx, cy = EMOTION_EYES[genuine]
  params = (
    fix_ms * base.fixation * noise[0],
    sacc_px * base.saccade * noise[1],
    blinks * base.blinks * noise[2],
    disp * base.dispersion * noise[3],
    cx + base.centre[0],
    cy + base.centre[1],
  )
  duration_ms = rng.uniform(*cfg.clip_seconds) * 1000
  n = int(duration_ms / 1000 * cfg.eye_rate_hz)
  t = np.arange(n) * 1000 / cfg.eye_rate_hz
  events = _events(cfg, rng, params, duration_ms)
  starts = np.array([e[0] for e in events])
  k = np.searchsorted(starts, t, side="right") - 1
  kind = np.array([e[2] for e in events])[k]
  ev_dur = np.array([e[1] - e[0] for e in events])[k]
  target = np.array([e[3:] for e in events], np.float64)
  # Gaze: fixations hold their point (with tremor); saccades move from the previous point.
  gaze = target[k].copy()
  sacc = kind == ex.SACCADE
  prev = np.maximum(k - 1, 0)
  prev_pt = target[prev]
  prev_pt = np.where(np.isnan(prev_pt), target[np.maximum(k - 2, 0)], prev_pt)
  frac = np.clip((t - starts[k]) / np.maximum(ev_dur, 1), 0, 1)[:, None]
  gaze[sacc] = (prev_pt + frac * (target[k] - prev_pt))[sacc]
  gaze += rng.normal(0, 6, gaze.shape)
  # Tracking loss: the eyes are there but not found.
  lost = kind == ex.EYES_NOT_FOUND
  if rng.random() < cfg.p_tracking_loss:
    a = rng.integers(0, n)
    lost[a : a + int(rng.uniform(0.2, 1.0) * cfg.eye_rate_hz)] = True
  kind = np.where(lost, ex.EYES_NOT_FOUND, kind)
  gaze[lost] = np.nan
  # Pupil follows genuine arousal, rising as the clip unfolds, with slow drift.
  rise = 1 - np.exp(-t / 3000)
  drift = np.cumsum(rng.normal(0, 0.004, n))
  pupil = base.pupil_mm + cfg.pupil_arousal_mm * arousal * rise + drift + rng.normal(0, 0.05)
  pupil_l = pupil + rng.normal(0, 0.03, n)
  pupil_r = pupil + 0.05 + rng.normal(0, 0.03, n)
  # Per-eye gaze and the same point in other units.
  w, h = cfg.screen_px
  mm_per_px = np.array(cfg.screen_mm) / np.array([w, h])
  left = gaze + np.array([-4, 0]) + rng.normal(0, 4, gaze.shape)
  right = gaze + np.array([4, 0]) + rng.normal(0, 4, gaze.shape)
  head = np.cumsum(rng.normal(0, 0.3, (n, 3)), axis=0) + [
    0,
    base.eye_height_mm,
    cfg.viewing_distance_mm,
  ]
  eye_l, eye_r = head + [-32, 0, 0], head + [32, 0, 0]

  def direction(eye_pos, pt):
    screen = np.stack(
      [(pt[:, 0] - w / 2) * mm_per_px[0], (h / 2 - pt[:, 1]) * mm_per_px[1], np.zeros(n)], 1
    )
    d = screen - eye_pos
    return d / np.linalg.norm(d, axis=1, keepdims=True)

  fix_pt = np.where((kind == ex.FIXATION)[:, None], target[k], np.nan)
  type_index = np.zeros(n)
  for code in (ex.FIXATION, ex.SACCADE, ex.EYES_NOT_FOUND):
    first = (kind == code) & np.r_[True, k[1:] != k[:-1]]
    type_index = np.where(kind == code, np.cumsum(first), type_index)
  valid = (~lost).astype(np.float64)
  rows = np.column_stack(
    [
      t,
      t * 1000 + 1.7e9,
      gaze,
      left,
      right,
      direction(eye_l, left),
      direction(eye_r, right),
      pupil_l,
      pupil_r,
      valid,
      valid,
      eye_l,
      eye_r,
      left * mm_per_px,
      right * mm_per_px,
      gaze / [w, h],
      left / [w, h],
      right / [w, h],
      kind,
      ev_dur,
      type_index,
      fix_pt,
    ]
  )
  invalid_cells = [c for c in range(ex.NUM_COLUMNS) if c not in (0, 1, 16, 17, 34, 35, 36, 37, 38)]
  rows[np.ix_(lost, invalid_cells)] = np.nan
  return rows
