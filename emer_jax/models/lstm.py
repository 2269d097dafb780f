"""Multi-layer unidirectional LSTM with PyTorch's parameterisation (gate order i, f, g, o)."""

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

from emer_jax.models.layers import splits_over_data


class LSTMLayer(nnx.Module):
  """One LSTM layer over a whole sequence; two biases as in PyTorch so checkpoints map 1:1."""

  def __init__(self, in_features, hidden, *, dtype, rngs: nnx.Rngs):
    # PyTorch draws every LSTM tensor from U(-1/sqrt(hidden), 1/sqrt(hidden)).
    bound = 1 / hidden**0.5

    def uniform(shape):
      value = jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound)
      return nnx.Param(value, out_sharding=(None,) * len(shape))

    self.input_kernel = uniform((in_features, 4 * hidden))
    self.hidden_kernel = uniform((hidden, 4 * hidden))
    self.input_bias = uniform((4 * hidden,))
    self.hidden_bias = uniform((4 * hidden,))
    self.dtype = dtype

  def __call__(self, x):
    """(B, T, F) → hidden states (B, T, H), from zero initial state."""
    dtype = self.dtype
    w_ih, w_hh = self.input_kernel[...].astype(dtype), self.hidden_kernel[...].astype(dtype)
    bias = (self.input_bias[...] + self.hidden_bias[...]).astype(dtype)
    # Under a mesh, each device runs the recurrence over its own samples with whole weights,
    # marked varying before the loop so that their gradient is summed over 'data' once, after
    # it. Left to GSPMD, the time loop held collectives at every step (hidden axis split over
    # 'model', gradient summed per step), and XLA:CPU deadlocked running two such loops at once.
    x = x.astype(dtype)
    if splits_over_data(x):
      return jax.shard_map(
        lambda x, *weights: _lstm(x, *(jax.lax.pcast(w, "data", to="varying") for w in weights)),
        in_specs=(P("data"), P(), P(), P()),
        out_specs=P("data"),
      )(x, w_ih, w_hh, bias)
    return _lstm(x, w_ih, w_hh, bias)


def _lstm(x, w_ih, w_hh, bias):
  gates_x = jnp.swapaxes(x @ w_ih + bias, 0, 1)

  def step(carry, gx):
    h, c = carry
    i, f, g, o = jnp.split(gx + h @ w_hh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h

  zeros = jnp.zeros_like(gates_x[0, :, : w_hh.shape[0]])  # varying over 'data' like gates_x
  _, hs = jax.lax.scan(step, (zeros, zeros), gates_x)
  return jnp.swapaxes(hs, 0, 1)


class LSTM(nnx.Module):
  """Stacked LSTM layers; returns the last layer's full output sequence."""

  def __init__(self, in_features, hidden, num_layers, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.layers = nnx.List(
      [
        LSTMLayer(in_features if i == 0 else hidden, hidden, dtype=dtype, rngs=rngs)
        for i in range(num_layers)
      ]
    )

  def __call__(self, x):
    for layer in self.layers:
      x = layer(x)
    return x
