"""Cross transformer: target tokens attend to source tokens (pre-norm, no final norm)."""

import jax
import jax.numpy as jnp
from flax import nnx

from emer_jax.models.layers import Dropout, layer_norm, linear


class CrossAttention(nnx.Module):
  """Multi-head attention with its own LayerNorm on queries, keys and values."""

  def __init__(self, dim, num_heads, head_dim, dropout, *, dtype, rngs: nnx.Rngs):
    inner = num_heads * head_dim
    self.norm_q = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.norm_k = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.norm_v = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.to_q = linear(dim, inner, shard_out=True, use_bias=False, dtype=dtype, rngs=rngs)
    self.to_k = linear(dim, inner, shard_out=True, use_bias=False, dtype=dtype, rngs=rngs)
    self.to_v = linear(dim, inner, shard_out=True, use_bias=False, dtype=dtype, rngs=rngs)
    self.to_out = linear(inner, dim, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(dropout, key="transformer.dropout", rngs=rngs)
    self.num_heads = num_heads
    self.scale = head_dim**-0.5

  def __call__(self, target, source):
    def split_heads(x):
      return x.reshape(*x.shape[:-1], self.num_heads, -1)

    q = split_heads(self.to_q(self.norm_q(target)))
    k = split_heads(self.to_k(self.norm_k(source)))
    v = split_heads(self.to_v(self.norm_v(source)))
    weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) * self.scale, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    return self.dropout(self.to_out(out.reshape(*out.shape[:-2], -1)))


class FeedForward(nnx.Module):
  """LN → Linear → GELU (erf) → dropout → Linear → dropout."""

  def __init__(self, dim, hidden, dropout, *, dtype, rngs: nnx.Rngs):
    self.norm = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.fc1 = linear(dim, hidden, dtype=dtype, rngs=rngs)
    self.fc2 = linear(hidden, dim, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(dropout, key="transformer.dropout", rngs=rngs)

  def __call__(self, x):
    x = self.dropout(jax.nn.gelu(self.fc1(self.norm(x)), approximate=False))
    return self.dropout(self.fc2(x))


class CrossTransformerLayer(nnx.Module):
  def __init__(self, dim, num_heads, head_dim, mlp_dim, dropout, *, dtype, rngs: nnx.Rngs):
    self.attention = CrossAttention(dim, num_heads, head_dim, dropout, dtype=dtype, rngs=rngs)
    self.feed_forward = FeedForward(dim, mlp_dim, dropout, dtype=dtype, rngs=rngs)

  def __call__(self, target, source):
    target = target + self.attention(target, source)
    return target + self.feed_forward(target)


class CrossTransformer(nnx.Module):
  """Adds learned positional embeddings to both sequences, then `depth` cross layers."""

  def __init__(
    self,
    dim,
    *,
    target_len,
    source_len,
    depth,
    num_heads,
    head_dim,
    mlp_dim,
    dropout,
    emb_dropout,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    def embedding(length):
      value = jax.random.normal(rngs.params(), (1, length, dim), jnp.float32)
      return nnx.Param(value, out_sharding=(None, None, None))

    self.pos_target = embedding(target_len)
    self.pos_source = embedding(source_len)
    self.emb_dropout = Dropout(emb_dropout, key="transformer.emb_dropout", rngs=rngs)
    self.layers = nnx.List(
      [
        CrossTransformerLayer(dim, num_heads, head_dim, mlp_dim, dropout, dtype=dtype, rngs=rngs)
        for _ in range(depth)
      ]
    )
    self.dtype = dtype

  def __call__(self, target, source):
    for name, x, pos in (("target", target, self.pos_target), ("source", source, self.pos_source)):
      if x.shape[1:] != pos.shape[1:]:
        raise ValueError(
          f"Cross transformer {name} tokens have shape {x.shape[1:]}; expected {pos.shape[1:]}."
        )
    target = self.emb_dropout((target + self.pos_target[...]).astype(self.dtype))
    source = self.emb_dropout((source + self.pos_source[...]).astype(self.dtype))
    for layer in self.layers:
      target = layer(target, source)
    return target


def cross_transformer(config, target_len, source_len, *, dtype, rngs):
  """The CrossTransformer a model config's `transformer` and `token_dim` describe."""
  tc = config.transformer
  return CrossTransformer(
    config.token_dim,
    target_len=target_len,
    source_len=source_len,
    depth=tc.depth,
    num_heads=tc.num_heads,
    head_dim=tc.head_dim,
    mlp_dim=tc.mlp_dim,
    dropout=tc.dropout,
    emb_dropout=tc.emb_dropout,
    dtype=dtype,
    rngs=rngs,
  )
