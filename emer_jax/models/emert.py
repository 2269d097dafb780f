"""EMERT: modality-specific and modality-invariant tokens, a GRL modality discriminator, and a
cross transformer in which the invariant tokens attend to the specific ones."""

import jax.numpy as jnp
from flax import nnx

from emer_jax.models.encoders import ModalityEncoders
from emer_jax.models.heads import TaskHeads
from emer_jax.models.layers import Dropout, LeakyMlp, linear, reverse_gradient, shard_batch
from emer_jax.models.transformer import cross_transformer


def projection(config, *, dtype, rngs):
  """feature_dim → token_dim, with a LeakyReLU hidden layer when projection_hidden > 0."""
  hidden = (config.projection_hidden,) if config.projection_hidden else ()
  sizes = (config.feature_dim, *hidden, config.token_dim)
  return LeakyMlp(sizes, negative_slope=config.projection_negative_slope, dtype=dtype, rngs=rngs)


class EMERT(nnx.Module):
  """The EMERT network; `config.modalities` and `config.use_discriminator` give the ablations."""

  def __init__(self, config, *, heads, dtype=jnp.float32, rngs: nnx.Rngs):
    self.modalities = tuple(config.modalities)
    self.encoders = ModalityEncoders(config, self.modalities, dtype=dtype, rngs=rngs)
    self.encoder_dropout = Dropout(config.encoder_dropout, key="encoder_dropout", rngs=rngs)
    self.invariant_projection = projection(config, dtype=dtype, rngs=rngs)
    self.specific_projections = nnx.Dict(
      {m: projection(config, dtype=dtype, rngs=rngs) for m in self.modalities}
    )
    self.discriminator = (
      linear(config.token_dim, len(self.modalities), dtype=dtype, rngs=rngs)
      if config.use_discriminator
      else None
    )
    num_tokens = sum(self.encoders.num_tokens.values())
    self.transformer = cross_transformer(config, num_tokens, num_tokens, dtype=dtype, rngs=rngs)
    self.heads = TaskHeads(
      config.token_dim,
      heads,
      tuple(config.head_hidden),
      config.head_negative_slope,
      dtype=dtype,
      rngs=rngs,
    )

  def __call__(self, inputs, *, grl_lambda=1.0, return_tokens=False):
    """See `emer_jax.models` for the contract; `return_tokens` adds `features`, `fused_tokens`."""
    features = self.encoders(inputs)
    invariant, specific, invariant_logits, specific_logits = [], [], [], []
    for m in self.modalities:
      x = self.encoder_dropout(features[m])
      invariant.append(self.invariant_projection(x))
      specific.append(self.specific_projections[m](x))
      if self.discriminator is not None:
        reversed_mean = reverse_gradient(invariant[-1].mean(axis=1), grl_lambda)
        invariant_logits.append(self.discriminator(reversed_mean))
        specific_logits.append(self.discriminator(specific[-1].mean(axis=1)))
    invariant, specific = (shard_batch(jnp.concatenate(x, 1)) for x in (invariant, specific))
    fused = self.transformer(invariant, specific)
    outputs = {"heads": self.heads(fused.mean(axis=1))}
    if self.discriminator is not None:
      outputs["invariant_logits"] = jnp.stack(invariant_logits)
      outputs["specific_logits"] = jnp.stack(specific_logits)
    if return_tokens:
      outputs["features"] = features
      outputs["fused_tokens"] = fused
    return outputs
