"""Who watched what, what they felt (ER) and what their face showed (FER)."""

import dataclasses

import numpy as np

from tfds_emer.sim.config import SimConfig
from tfds_emer.vocabulary import EMOTIONS, STIMULI

# Prototype (valence, arousal) of each emotion, in EMOTIONS order.
PROTOTYPE_VA = np.array(
  [
    [0.75, 0.5],  # happiness
    [-0.6, -0.4],  # sadness
    [-0.6, 0.7],  # fear
    [0.25, 0.75],  # surprise
    [-0.65, 0.25],  # disgust
    [-0.7, 0.65],  # anger
    [0.0, -0.25],  # neutral
  ]
)
# Words used in sample IDs (`8_film_happy`), in EMOTIONS order.
ID_WORDS = ("happy", "sad", "fear", "surprise", "disgust", "anger", "neutral")
NEUTRAL = EMOTIONS.index("neutral")
HAPPINESS = EMOTIONS.index("happiness")


def polarity(valence: float) -> int:
  """3-class label as the sign of valence: 0 positive, 1 negative, 2 neutral."""
  return 0 if valence > 0 else 1 if valence < 0 else 2


@dataclasses.dataclass(frozen=True)
class SampleLabels:
  sample_id: str
  subject_id: int
  index: int  # position in the whole dataset, seeds the sample's rendering
  stimulus: int
  fold: int
  er_emotion: int
  er_valence: float
  er_arousal: float
  fer_emotion: int
  fer_valence: float
  fer_arousal: float
  fer_intensity: float
  masked: bool

  @property
  def er_polarity(self) -> int:
    return polarity(self.er_valence)

  @property
  def fer_polarity(self) -> int:
    return polarity(self.fer_valence)


def samples_per_subject(cfg: SimConfig) -> np.ndarray:
  base, extra = divmod(cfg.num_samples, cfg.num_subjects)
  if base == 0 or base + (extra > 0) > 2 * len(EMOTIONS):
    raise ValueError(
      f"{cfg.num_samples} samples over {cfg.num_subjects} subjects: each subject needs 1 to "
      f"{2 * len(EMOTIONS)} samples (one per stimulus kind and target emotion)."
    )
  counts = np.full(cfg.num_subjects, base)
  counts[np.random.default_rng([cfg.seed, 1]).permutation(cfg.num_subjects)[:extra]] += 1
  return counts


def _display(cfg: SimConfig, rng: np.random.Generator, genuine: int) -> tuple[int, float, bool]:
  """Displayed emotion and intensity for a genuine emotion, and whether it is masked."""
  if rng.random() < cfg.p_mask:
    kind = rng.choice(3, p=cfg.mask_kinds)
    if kind == 0 and genuine != NEUTRAL:
      return NEUTRAL, 0.0, True
    if kind == 1 and genuine != HAPPINESS:
      return HAPPINESS, float(rng.uniform(*cfg.smile_intensity_range)), True
    other = rng.choice([e for e in range(len(EMOTIONS)) if e not in (genuine, NEUTRAL)])
    return int(other), float(rng.uniform(*cfg.intensity_range)), True
  if genuine == NEUTRAL:
    return NEUTRAL, 0.0, False
  return genuine, float(rng.uniform(*cfg.intensity_range)), False


def plan(cfg: SimConfig) -> list[SampleLabels]:
  """All samples of the dataset with their labels, in a fixed order."""
  rng = np.random.default_rng([cfg.seed, 2])
  counts = samples_per_subject(cfg)
  folds = 1 + np.random.default_rng([cfg.seed, 3]).permutation(cfg.num_samples) % cfg.num_folds
  out = []
  for subject, count in enumerate(counts, start=1):
    combos = rng.choice(2 * len(EMOTIONS), size=count, replace=False)
    for combo in sorted(combos):
      stimulus, target = divmod(int(combo), len(EMOTIONS))
      genuine = target
      if rng.random() < cfg.p_induction_fail:
        genuine = int(rng.choice([e for e in range(len(EMOTIONS)) if e != target]))
      va = PROTOTYPE_VA[genuine] + rng.normal(0, cfg.va_jitter, 2)
      er_v, er_a = np.clip(np.round(va * 4) / 4, -1, 1)
      shown, intensity, masked = _display(cfg, rng, genuine)
      if shown == NEUTRAL:
        fer_va = np.array([0.0, PROTOTYPE_VA[NEUTRAL, 1]]) + rng.normal(0, 0.02, 2)
        fer_va[0] = np.round(fer_va[0] / 0.05) * 0.05  # mostly exactly 0: neutral polarity
      else:
        fer_va = PROTOTYPE_VA[shown] * (0.4 + 0.2 * intensity)
        fer_va = fer_va + rng.normal(0, cfg.fer_va_noise, 2)
      fer_v, fer_a = np.clip(np.round(fer_va, 4), -1, 1)
      index = len(out)
      out.append(
        SampleLabels(
          sample_id=f"{subject}_{STIMULI[stimulus]}_{ID_WORDS[target]}",
          subject_id=subject,
          index=index,
          stimulus=stimulus,
          fold=int(folds[index]),
          er_emotion=genuine,
          er_valence=float(er_v),
          er_arousal=float(er_a),
          fer_emotion=int(shown),
          fer_valence=float(fer_v),
          fer_arousal=float(fer_a),
          fer_intensity=round(intensity, 4),
          masked=masked,
        )
      )
  return out
