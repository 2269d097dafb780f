"""Baselines from the EMER benchmark: single-modality networks and classic fusion models.

All reuse EMERT's encoders and heads and return {'heads': {target: (B, C)}} (no discriminator).
"""

import jax.numpy as jnp
from flax import nnx

from emer_jax.models.encoders import ModalityEncoders, check_inputs, expected_shapes
from emer_jax.models.heads import TaskHeads
from emer_jax.models.layers import Dropout, linear
from emer_jax.models.lstm import LSTM
from emer_jax.models.modality_dropout import modality_dropout
from emer_jax.models.transformer import cross_transformer


def _heads(config, in_features, heads, *, dtype, rngs, hidden=None):
  hidden = tuple(config.head_hidden) if hidden is None else hidden
  return TaskHeads(in_features, heads, hidden, config.head_negative_slope, dtype=dtype, rngs=rngs)


class FaceLSTM(nnx.Module):
  """ResNet-18 per frame → LSTM over frames → last hidden state → heads."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.encoders = ModalityEncoders(config, ("face",), dtype=dtype, rngs=rngs)
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    dim, layers = config.feature_dim, config.baseline.lstm_layers
    self.lstm = LSTM(dim, dim, layers, dtype=dtype, rngs=rngs)
    self.heads = _heads(config, dim, heads, dtype=dtype, rngs=rngs)

  def __call__(self, inputs, *, grl_lambda=None):
    x = self.lstm(self.dropout(self.encoders(inputs)["face"]))
    return {"heads": self.heads(x[:, -1])}


class FaceTransformer(nnx.Module):
  """ResNet-18 per frame → self-attention transformer over frames → mean → heads."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.encoders = ModalityEncoders(config, ("face",), dtype=dtype, rngs=rngs)
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    self.projection = linear(config.feature_dim, config.token_dim, dtype=dtype, rngs=rngs)
    n = config.face_encoder.num_frames
    self.transformer = cross_transformer(config, n, n, dtype=dtype, rngs=rngs)
    self.heads = _heads(config, config.token_dim, heads, dtype=dtype, rngs=rngs)

  def __call__(self, inputs, *, grl_lambda=None):
    x = self.projection(self.dropout(self.encoders(inputs)["face"]))
    return {"heads": self.heads(self.transformer(x, x).mean(axis=1))}


class EyeLSTM(nnx.Module):
  """One LSTM over the rows of `config.modalities` ('eye', 'gaze' or both) side by side → mean
  over time → heads. `eye_lstm` reads eye and gaze; `eye_clocks_only` only the eye stream's
  clock columns (the pipeline reduces it, `model.eye_columns = 'clocks'`)."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.modalities = tuple(config.modalities)
    widths = {"eye": config.num_eye_features, "gaze": config.num_gaze_features}
    if not self.modalities or set(self.modalities) - set(widths):
      raise ValueError(f"EyeLSTM reads 'eye' and/or 'gaze'; got modalities {self.modalities}.")
    in_features = sum(widths[m] for m in self.modalities)
    layers = config.sequence_encoder.num_layers
    self.lstm = LSTM(in_features, config.feature_dim, layers, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    self.heads = _heads(config, config.feature_dim, heads, dtype=dtype, rngs=rngs)
    self.shapes = expected_shapes(config)
    self.modality_dropout = modality_dropout(config, ("eye", "gaze"), rngs=rngs)
    self.dtype = dtype

  def __call__(self, inputs, *, grl_lambda=None):
    check_inputs(inputs, self.modalities, self.shapes)
    if self.modality_dropout is not None:
      inputs = self.modality_dropout(inputs)
    x = jnp.concatenate([inputs[m] for m in self.modalities], axis=-1).astype(self.dtype)
    return {"heads": self.heads(self.dropout(self.lstm(x)).mean(axis=1))}


class LateFusion(nnx.Module):
  """A head per modality on its time-averaged features; predictions averaged over modalities."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.encoders = ModalityEncoders(config, config.modalities, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    self.modality_heads = nnx.Dict(
      {
        m: _heads(config, config.feature_dim, heads, dtype=dtype, rngs=rngs)
        for m in config.modalities
      }
    )

  def __call__(self, inputs, *, grl_lambda=None):
    features = self.encoders(inputs)
    per_modality = [
      self.modality_heads[m](self.dropout(features[m]).mean(axis=1)) for m in features
    ]
    return {
      "heads": {
        name: jnp.mean(jnp.stack([p[name] for p in per_modality]), axis=0)
        for name in per_modality[0]
      }
    }


class TensorFusion(nnx.Module):
  """TFN: per-modality vectors with a constant 1 appended, fused by their outer product."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.encoders = ModalityEncoders(config, config.modalities, dtype=dtype, rngs=rngs)
    dim = config.baseline.tfn_dim
    self.projections = nnx.Dict(
      {m: linear(config.feature_dim, dim, dtype=dtype, rngs=rngs) for m in config.modalities}
    )
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    fused = (dim + 1) ** len(config.modalities)
    self.heads = _heads(config, fused, heads, dtype=dtype, rngs=rngs)

  def __call__(self, inputs, *, grl_lambda=None):
    features = self.encoders(inputs)
    fused = None
    for m, x in features.items():
      z = self.projections[m](x.mean(axis=1))
      z = jnp.concatenate([z, jnp.ones_like(z[:, :1])], axis=-1)
      fused = z if fused is None else (fused[:, :, None] * z[:, None, :]).reshape(z.shape[0], -1)
    return {"heads": self.heads(self.dropout(fused))}


class CrossmodalTransformer(nnx.Module):
  """MulT-style: each modality's tokens attend to every other modality's tokens."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    modalities = tuple(config.modalities)
    if len(modalities) < 2:
      raise ValueError(
        f"The crossmodal transformer needs two or more modalities; got {modalities}."
      )
    self.encoders = ModalityEncoders(config, modalities, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    self.projections = nnx.Dict(
      {m: linear(config.feature_dim, config.token_dim, dtype=dtype, rngs=rngs) for m in modalities}
    )
    lengths = self.encoders.num_tokens
    self.pairs = tuple((t, s) for t in modalities for s in modalities if s != t)
    self.crossmodal = nnx.Dict(
      {
        f"{t}_from_{s}": cross_transformer(config, lengths[t], lengths[s], dtype=dtype, rngs=rngs)
        for t, s in self.pairs
      }
    )
    self.heads = _heads(config, config.token_dim * len(self.pairs), heads, dtype=dtype, rngs=rngs)

  def __call__(self, inputs, *, grl_lambda=None):
    tokens = {m: self.projections[m](self.dropout(x)) for m, x in self.encoders(inputs).items()}
    pooled = [
      self.crossmodal[f"{t}_from_{s}"](tokens[t], tokens[s]).mean(axis=1) for t, s in self.pairs
    ]
    return {"heads": self.heads(jnp.concatenate(pooled, axis=-1))}


BASELINES = {
  "face_lstm": FaceLSTM,
  "face_transformer": FaceTransformer,
  "eye_lstm": EyeLSTM,
  "eye_clocks_only": EyeLSTM,
  "late_fusion": LateFusion,
  "tfn": TensorFusion,
  "mult": CrossmodalTransformer,
}
