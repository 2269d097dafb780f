"""EMERT (reference design, narrow) on EMER-Sim small, ER 7-class, one fold: a minute on a CPU."""

from emer_jax.config import base_config


def get_config():
  c = base_config("reference")
  c.dataset = "emer/synthetic_small"
  c.protocol = "er7"
  c.folds = (1,)
  c.num_epochs = 12
  c.batch_size = 16
  c.learning_rate = 1e-3
  c.checkpoint_every_steps = 50
  c.log_every_steps = 10
  m = c.model
  m.face_encoder.widths = (8, 16, 32, 64)
  m.face_encoder.num_frames = 4  # the reference samples 8 frames a clip
  # The reference head (64→32→16→8→C, LeakyReLU, PyTorch init) starts with vanishing logits and
  # stays near ln 7 for hundreds of steps; a linear head learns within a CPU-minutes budget.
  m.head_hidden = ()
  return c
