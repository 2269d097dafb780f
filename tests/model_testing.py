"""Tiny model configs and inputs shared by the model tests."""

import numpy as np
from flax import nnx

from emer_jax import models


def tiny_config(variant="reference", **overrides):
  c = models.get_config(variant)
  c.feature_dim = 8
  c.face_encoder.widths = (4, 8)
  c.face_encoder.blocks = (1, 1)
  c.face_encoder.num_frames = 2
  c.sequence_length = 4
  c.sequence_encoder.num_layers = 1
  c.fixation_encoder.map_size = 16
  c.fixation_encoder.widths = (4, 4)
  c.fixation_encoder.grid = 2
  c.projection_hidden = 8 if c.projection_hidden else 0
  c.token_dim = 8
  c.transformer.depth = 1
  c.transformer.num_heads = 2
  c.transformer.head_dim = 4
  c.transformer.mlp_dim = 8
  c.head_hidden = (4,) if c.head_hidden else ()
  c.update(overrides)
  return c


def tiny_inputs(batch=2, seed=0, image=16, eye_features=39):
  rng = np.random.default_rng(seed)
  f = np.float32
  return {
    "face": rng.uniform(size=(batch, 2, image, image, 3)).astype(f),
    "eye": rng.normal(size=(batch, 4, eye_features)).astype(f),
    "gaze": rng.normal(size=(batch, 4, 2)).astype(f),
    "fixation_map": rng.uniform(size=(batch, 16, 16, 1)).astype(f),
  }


@nnx.jit
def forward(model, inputs, grl_lambda=1.0):
  return model(inputs, grl_lambda=grl_lambda)
