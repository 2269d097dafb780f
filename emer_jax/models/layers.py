"""Building blocks shared by the models: PyTorch-like initialisers, sharded layers, the GRL."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

# PyTorch's default Linear/LSTM weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_linear_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
# torchvision ResNet convs: kaiming normal, fan_out, ReLU gain.
torch_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


class Dropout(nnx.Dropout):
  """`nnx.Dropout` whose rate a train step may set to a traced value, so runs with other rates
  share one program (`emer_jax.train.steps`); `key` names the model config key of its rate.
  With a Python rate it is `nnx.Dropout`, bit for bit."""

  def __init__(self, rate: float, *, key: str, rngs: nnx.Rngs):
    super().__init__(rate, rngs=rngs)
    self.key = key

  def __call__(self, inputs, *, deterministic=None, rngs=None):
    if not isinstance(self.rate, jax.Array):
      return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
    if self.deterministic if deterministic is None else deterministic:
      return inputs
    keep_prob = 1.0 - self.rate  # as nnx.Dropout computes its mask
    shape = [1 if d in self.broadcast_dims else n for d, n in enumerate(inputs.shape)]
    key = (rngs or self.rngs)()
    mask = jax.random.bernoulli(
      key, p=keep_prob, shape=shape, out_sharding=jax.typeof(inputs).sharding
    )
    mask = jnp.broadcast_to(mask, inputs.shape)
    return jax.lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))


def splits_over_data(x):
  """Whether the current mesh has a 'data' axis that the leading (batch) axis of x divides."""
  mesh = jax.sharding.get_abstract_mesh()
  return "data" in mesh.axis_names and x.shape[0] % mesh.shape["data"] == 0


def shard_batch(x):
  """Keeps the leading (batch) axis of an activation on mesh axis 'data', where there is one.

  Without it, GSPMD may follow a 'model'-sharded weight and re-layout large activations.
  """
  return jax.lax.with_sharding_constraint(x, P("data")) if splits_over_data(x) else x


def linear(in_features, out_features, *, shard_out=False, use_bias=True, dtype, rngs):
  """Linear layer; `shard_out` puts the output axis of the kernel on mesh axis 'model'."""
  return nnx.Linear(
    in_features,
    out_features,
    use_bias=use_bias,
    dtype=dtype,
    kernel_init=nnx.with_partitioning(torch_linear_init, (None, "model" if shard_out else None)),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
    rngs=rngs,
  )


def conv(
  in_features, out_features, kernel_size, stride=1, padding=0, *, use_bias=False, dtype, rngs
):
  """Conv with PyTorch-style symmetric integer padding; output channels sharded on 'model'."""
  return nnx.Conv(
    in_features,
    out_features,
    (kernel_size, kernel_size),
    strides=stride,
    padding=((padding, padding), (padding, padding)),
    use_bias=use_bias,
    dtype=dtype,
    kernel_init=nnx.with_partitioning(torch_conv_init, (None, None, None, "model")),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
    rngs=rngs,
  )


def batch_norm(num_features, *, dtype, rngs):
  """BatchNorm with PyTorch's eps and momentum (0.1 in PyTorch's convention)."""
  return nnx.BatchNorm(
    num_features,
    momentum=0.9,
    epsilon=1e-5,
    use_fast_variance=False,
    dtype=dtype,
    scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), (None,)),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
    rngs=rngs,
  )


def layer_norm(num_features, *, dtype, rngs):
  return nnx.LayerNorm(
    num_features,
    epsilon=1e-5,
    use_fast_variance=False,
    dtype=dtype,
    scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), (None,)),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (None,)),
    rngs=rngs,
  )


class LeakyMlp(nnx.Module):
  """Linear layers with LeakyReLU between them (none after the last)."""

  def __init__(self, sizes: Sequence[int], *, negative_slope: float, dtype, rngs: nnx.Rngs):
    self.negative_slope = negative_slope
    self.layers = nnx.List(
      [linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    )

  def __call__(self, x):
    for i, layer in enumerate(self.layers):
      if i:
        x = jax.nn.leaky_relu(x, self.negative_slope)
      x = layer(x)
    return x


@jax.custom_vjp
def _reverse(x, lam):
  return x


def _reverse_fwd(x, lam):
  return x, lam


def _reverse_bwd(lam, g):
  return (-lam * g).astype(g.dtype), jnp.zeros_like(lam)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def reverse_gradient(x, lam):
  """Gradient reversal: identity forward, −lam·g backward; `lam` may be traced."""
  return _reverse(x, jnp.asarray(lam, jnp.float32))
