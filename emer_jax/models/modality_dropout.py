"""Modality dropout: in training, each input stream of a sample is made absent with probability
`rate`, never all of a sample's streams at once.

An absent stream is zeros of the model's input: for `eye` and `gaze` the dataset's mean row
(they are normalised to zero mean), for `fixation_map` a map without fixations, for `face`
black frames. `emer_jax.evaluation.corruptions.remove` makes a stream absent the same way.
"""

import jax
import jax.numpy as jnp
from flax import nnx


def absent(x):
  """What a stream looks like to the model when it is missing: zeros of its input."""
  return jnp.zeros_like(x)


def drop_mask(key, batch: int, num_streams: int, rate) -> jax.Array:
  """(batch, num_streams) booleans, True = drop; each True with probability `rate`, but a row
  that would drop every stream keeps one, chosen uniformly."""
  draw, rescue = jax.random.split(key)
  drop = jax.random.bernoulli(draw, rate, (batch, num_streams))
  kept = jax.random.randint(rescue, (batch,), 0, num_streams)
  every = drop.all(axis=1, keepdims=True)
  return drop & ~(every & (jnp.arange(num_streams) == kept[:, None]))


class ModalityDropout(nnx.Module):
  """Drops whole streams of a dict of inputs per sample in training (`model.train()`); the
  identity in evaluation. Draws from the model's `dropout` RNG stream."""

  def __init__(self, rate: float, modalities, *, rngs: nnx.Rngs):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"model.modality_dropout is {rate}; expected 0 <= p < 1.")
    self.rate = rate
    self.modalities = tuple(modalities)
    self.rngs = rngs["dropout"].fork()
    self.deterministic = False

  def __call__(self, inputs: dict) -> dict:
    if self.deterministic or len(self.modalities) < 2:
      return inputs
    batch = inputs[self.modalities[0]].shape[0]
    drop = drop_mask(self.rngs(), batch, len(self.modalities), self.rate)
    out = dict(inputs)
    for i, m in enumerate(self.modalities):
      x = inputs[m]
      mask = drop[:, i].reshape((batch,) + (1,) * (x.ndim - 1))
      out[m] = jnp.where(mask, absent(x), x)
    return out


def modality_dropout(config, modalities, *, rngs):
  """A `ModalityDropout` when `config.modality_dropout` > 0, else None (no RNG is forked, so a
  model without it is the same, bit for bit, as before the option existed)."""
  rate = config.get("modality_dropout", 0.0)
  return ModalityDropout(rate, modalities, rngs=rngs) if rate else None
