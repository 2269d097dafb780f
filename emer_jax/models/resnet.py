"""ResNet-18 in torchvision's layout (BasicBlocks, 7×7 stem, max pool, global average pool)."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from emer_jax.models.layers import batch_norm, conv


class BasicBlock(nnx.Module):
  """Two 3×3 conv+BN with a residual; a strided 1×1 conv+BN downsample when the shape changes."""

  def __init__(self, in_features, features, stride, *, dtype, rngs: nnx.Rngs):
    self.conv1 = conv(in_features, features, 3, stride, 1, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(features, dtype=dtype, rngs=rngs)
    self.conv2 = conv(features, features, 3, 1, 1, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(features, dtype=dtype, rngs=rngs)
    if stride != 1 or in_features != features:
      self.downsample_conv = conv(in_features, features, 1, stride, dtype=dtype, rngs=rngs)
      self.downsample_bn = batch_norm(features, dtype=dtype, rngs=rngs)
    else:
      self.downsample_conv = self.downsample_bn = None

  def __call__(self, x):
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.downsample_conv is not None:
      x = self.downsample_bn(self.downsample_conv(x))
    return jax.nn.relu(x + y)


class ResNet(nnx.Module):
  """Images (N, H, W, 3) → pooled features (N, widths[-1]); no classifier."""

  def __init__(
    self,
    widths: Sequence[int] = (64, 128, 256, 512),
    blocks: Sequence[int] = (2, 2, 2, 2),
    *,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.conv1 = conv(3, widths[0], 7, 2, 3, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(widths[0], dtype=dtype, rngs=rngs)
    stages = []
    in_features = widths[0]
    for i, (features, num_blocks) in enumerate(zip(widths, blocks, strict=True)):
      stage = []
      for b in range(num_blocks):
        stride = 2 if i > 0 and b == 0 else 1
        stage.append(BasicBlock(in_features, features, stride, dtype=dtype, rngs=rngs))
        in_features = features
      stages.append(nnx.List(stage))
    self.stages = nnx.List(stages)
    self.num_features = widths[-1]

  def __call__(self, x):
    x = jax.nn.relu(self.bn1(self.conv1(x)))
    x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage in self.stages:
      for block in stage:
        x = block(x)
    return x.mean(axis=(1, 2))
