"""Every parameter of EMER-Sim in one frozen dataclass."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class SimConfig:
  """EMER-Sim parameters. The same config and seed give the same data, bit for bit."""

  seed: int = 0
  num_subjects: int = 121
  num_samples: int = 1303  # spread over subjects, 10–11 each at paper scale
  num_folds: int = 5
  p_film: float = 0.5  # stimulus kind of a sample
  p_induction_fail: float = 0.15  # genuine emotion differs from the stimulus' target
  va_jitter: float = 0.12  # ER valence/arousal jitter around the emotion prototype
  # Masking: with p_mask the display differs from the genuine emotion; the kind of mask is
  # drawn from (neutral face, social smile, another expression) with these weights.
  p_mask: float = 0.3
  mask_kinds: tuple[float, float, float] = (0.45, 0.35, 0.2)
  intensity_range: tuple[float, float] = (0.8, 3.0)  # unmasked display intensity
  smile_intensity_range: tuple[float, float] = (0.5, 1.5)
  fer_va_noise: float = 0.05
  # Face video.
  face_size: int = 112
  face_noise: tuple[float, float] = (0.5, 1.5)  # per-subject sensor noise std, grey levels
  head_motion_px: float = 1.5
  head_roll_deg: float = 3.0
  lighting_drift: float = 0.12
  # Eye tracker.
  eye_rate_hz: float = 50.0
  clip_seconds: tuple[float, float] = (10.0, 16.0)
  screen_px: tuple[int, int] = (1920, 1080)
  screen_mm: tuple[float, float] = (527.0, 296.0)
  viewing_distance_mm: float = 600.0
  subject_eye_spread: float = 0.35  # log-std of subject baselines (fixation, saccades, …)
  sample_eye_noise: float = 0.25  # log-std of per-sample variation of the same
  pupil_arousal_mm: float = 0.45  # pupil dilation per unit of genuine arousal
  p_tracking_loss: float = 0.3  # chance of one tracking-loss stretch per sample
