"""EMER-Sim samples: labels, face frames and the raw eye export of each sample."""

import dataclasses

import numpy as np

from tfds_emer.sim import eye, face, labels
from tfds_emer.sim.config import SimConfig


@dataclasses.dataclass(frozen=True)
class RawSample:
  """A sample as the release holds it: frames over the whole clip, the unfilled export."""

  labels: labels.SampleLabels
  frames: np.ndarray  # uint8 (N, size, size, 3) RGB, uniformly over the clip
  eye: np.ndarray  # float64 (rows, 39), NaN where the tracker leaves cells empty


class EmerSim:
  """Generates the samples of one `SimConfig`; each sample is seeded on its own."""

  def __init__(self, cfg: SimConfig):
    self.cfg = cfg
    self.samples = labels.plan(cfg)
    self.subjects = {s.subject_id: self._subject(s.subject_id) for s in self.samples}

  def _subject(self, subject_id: int) -> tuple[face.Appearance, eye.EyeBaseline]:
    rng = np.random.default_rng([self.cfg.seed, 4, subject_id])
    return face.appearance(self.cfg, rng), eye.baseline(self.cfg, rng)

  def sample(self, index: int, num_frames: int) -> RawSample:
    lab = self.samples[index]
    app, base = self.subjects[lab.subject_id]
    rng_face = np.random.default_rng([self.cfg.seed, 5, index])
    rng_eye = np.random.default_rng([self.cfg.seed, 6, index])
    times = np.linspace(0, 1, num_frames)
    frames = face.render(self.cfg, app, rng_face, lab.fer_emotion, lab.fer_intensity, times)
    export = eye.export(self.cfg, base, rng_eye, lab.er_emotion, lab.er_arousal)
    return RawSample(lab, frames, export)
