"""Per-modality encoders: each input stream becomes a token sequence (B, T_m, feature_dim)."""

import jax
import jax.numpy as jnp
from flax import nnx

from emer_jax.models.layers import conv, linear, shard_batch
from emer_jax.models.lstm import LSTM
from emer_jax.models.modality_dropout import modality_dropout
from emer_jax.models.resnet import ResNet

MODALITIES = ("face", "eye", "gaze", "fixation_map")


class FaceEncoder(nnx.Module):
  """Frames (B, T, H, W, 3) → ResNet features per frame → Linear to feature_dim."""

  def __init__(self, config, *, dtype, rngs: nnx.Rngs):
    fc = config.face_encoder
    self.backbone = ResNet(fc.widths, fc.blocks, dtype=dtype, rngs=rngs)
    self.projection = linear(
      fc.widths[-1], config.feature_dim, shard_out=True, dtype=dtype, rngs=rngs
    )
    self.num_tokens = fc.num_frames

  def frame_features(self, face):
    """(B, T, H, W, 3) → backbone features (B, T, C), before the projection."""
    b, t = face.shape[:2]
    frames = shard_batch(face.reshape(b * t, *face.shape[2:]))
    return self.backbone(frames).reshape(b, t, -1)

  def __call__(self, face):
    return self.projection(self.frame_features(face))


class SequenceEncoder(nnx.Module):
  """Rows (B, T, F) → multi-layer LSTM outputs (B, T, feature_dim)."""

  def __init__(self, num_features, config, *, dtype, rngs: nnx.Rngs):
    num_layers = config.sequence_encoder.num_layers
    self.lstm = LSTM(num_features, config.feature_dim, num_layers, dtype=dtype, rngs=rngs)
    self.num_tokens = config.sequence_length

  def __call__(self, x):
    return self.lstm(x)


class FixationMapEncoder(nnx.Module):
  """Fixation map (B, S, S, 1) → strided conv stack → grid×grid average pool → tokens."""

  def __init__(self, config, *, dtype, rngs: nnx.Rngs):
    fc = config.fixation_encoder
    widths = (1, *fc.widths)
    self.convs = nnx.List(
      [
        conv(a, b, 3, 2, 1, use_bias=True, dtype=dtype, rngs=rngs)
        for a, b in zip(widths[:-1], widths[1:], strict=True)
      ]
    )
    self.projection = linear(widths[-1], config.feature_dim, dtype=dtype, rngs=rngs)
    self.grid = fc.grid
    self.num_tokens = fc.grid**2

  def __call__(self, x):
    for layer in self.convs:
      x = jax.nn.relu(layer(x))
    b, h, w, c = x.shape
    g = self.grid
    x = x.reshape(b, g, h // g, g, w // g, c).mean(axis=(2, 4)).reshape(b, g * g, c)
    return self.projection(x)


def expected_shapes(config) -> dict[str, tuple]:
  """Per-sample input shape of every stream (None: any size)."""
  length = config.sequence_length
  size = config.fixation_encoder.map_size
  return {
    "face": (config.face_encoder.num_frames, None, None, 3),
    "eye": (length, config.num_eye_features),
    "gaze": (length, config.num_gaze_features),
    "fixation_map": (size, size, 1),
  }


def check_inputs(inputs, names, shapes):
  """Raises a ValueError naming the stream when one is missing or has the wrong shape."""
  if not hasattr(inputs, "keys"):
    raise TypeError(f"Model inputs must be a dict of arrays; got {type(inputs).__name__}.")
  missing = [n for n in names if n not in inputs]
  if missing:
    raise KeyError(f"Model inputs lack {missing}; this model reads {list(names)}.")
  batch = None
  for name in names:
    shape = tuple(inputs[name].shape)
    want = shapes[name]
    ok = len(shape) == len(want) + 1 and all(
      w is None or w == s for w, s in zip(want, shape[1:], strict=False)
    )
    if not ok or (batch is not None and shape[0] != batch):
      pretty = ", ".join("?" if w is None else str(w) for w in want)
      raise ValueError(f"Input {name!r} has shape {shape}; expected (B, {pretty}).")
    batch = shape[0]


class ModalityEncoders(nnx.Module):
  """One encoder per configured modality; `__call__` returns {modality: (B, T_m, feature_dim)}."""

  def __init__(self, config, modalities, *, dtype, rngs: nnx.Rngs):
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
      raise ValueError(f"Unknown modalities {unknown} in {modalities}; choose from {MODALITIES}.")
    builders = {
      "face": lambda: FaceEncoder(config, dtype=dtype, rngs=rngs),
      "eye": lambda: SequenceEncoder(config.num_eye_features, config, dtype=dtype, rngs=rngs),
      "gaze": lambda: SequenceEncoder(config.num_gaze_features, config, dtype=dtype, rngs=rngs),
      "fixation_map": lambda: FixationMapEncoder(config, dtype=dtype, rngs=rngs),
    }
    self.modalities = tuple(modalities)
    self.encoders = nnx.Dict({m: builders[m]() for m in modalities})
    self.shapes = expected_shapes(config)
    if "fixation_map" in modalities:
      size, grid = config.fixation_encoder.map_size, config.fixation_encoder.grid
      stride = 2 ** len(config.fixation_encoder.widths)
      if size % (stride * grid):
        raise ValueError(
          f"fixation_encoder.map_size={size} must be divisible by {stride} × grid {grid}."
        )
    self.modality_dropout = modality_dropout(config, self.modalities, rngs=rngs)
    self.dtype = dtype

  @property
  def num_tokens(self) -> dict[str, int]:
    return {m: self.encoders[m].num_tokens for m in self.modalities}

  def __call__(self, inputs):
    check_inputs(inputs, self.modalities, self.shapes)
    if self.modality_dropout is not None:
      inputs = self.modality_dropout(inputs)
    return {m: self.encoders[m](jnp.asarray(inputs[m], self.dtype)) for m in self.modalities}
