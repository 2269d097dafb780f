"""Task heads: one small MLP per target, on a pooled representation."""

from flax import nnx

from emer_jax.models.layers import LeakyMlp


class TaskHeads(nnx.Module):
  """{target: (B, C)} from (B, D); `hidden` are the MLP's hidden widths (empty: one Linear)."""

  def __init__(self, in_features, heads, hidden, negative_slope, *, dtype, rngs: nnx.Rngs):
    if not heads:
      raise ValueError("`heads` must name at least one target, e.g. {'er_emotion': 7}.")
    self.heads = nnx.Dict(
      {
        name: LeakyMlp(
          (in_features, *hidden, size), negative_slope=negative_slope, dtype=dtype, rngs=rngs
        )
        for name, size in heads.items()
      }
    )

  def __call__(self, x):
    return {name: head(x) for name, head in self.heads.items()}
