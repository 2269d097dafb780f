"""Models: EMERT and its variants, behind `get_config` and `build_model`.

`model(inputs, grl_lambda=lam)` takes a dict of streams: `face` (B, T_f, H, W, 3) in [0, 1],
`eye` (B, T_e, 39), `gaze` (B, T_e, 2), `fixation_map` (B, S, S, 1), reads those it needs, and
returns {'heads': {target: (B, C)}} plus, with a modality discriminator, `invariant_logits` and
`specific_logits` (M, B, M): the logits for modality m's time-averaged features (label m).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from emer_jax.models.baselines import BASELINES
from emer_jax.models.config import EMERT_VARIANTS, VARIANTS, get_config
from emer_jax.models.emert import EMERT

__all__ = ["VARIANTS", "build_model", "get_config", "EMERT"]


def _construct(config, heads, rngs, dtype):
  if config.variant in EMERT_VARIANTS:
    return EMERT(config, heads=heads, dtype=dtype, rngs=rngs)
  if config.variant in BASELINES:
    return BASELINES[config.variant](config, heads=heads, dtype=dtype, rngs=rngs)
  raise ValueError(f"Unknown model variant {config.variant!r}; expected one of {VARIANTS}.")


def build_model(config, *, heads: dict[str, int], rngs: nnx.Rngs, dtype=jnp.float32) -> nnx.Module:
  """The network `config.variant` names, with one head per target in `heads` (name → size).

  Parameters are float32 and carry sharding annotations; under a mesh (`jax.set_mesh`) they are
  created sharded, otherwise unsharded. `dtype` is the computation dtype.
  """
  if jax.sharding.get_abstract_mesh().empty:
    with nnx.use_eager_sharding(False):
      model = _construct(config, dict(heads), rngs, dtype)
  else:
    model = _construct(config, dict(heads), rngs, dtype)
  encoders = getattr(model, "encoders", None)
  if config.face_encoder.pretrained and encoders is not None and "face" in encoders.modalities:
    from emer_jax.convert.state_dict import load_resnet_weights  # noqa: PLC0415

    load_resnet_weights(model.encoders.encoders["face"].backbone, config.face_encoder.pretrained)
  model.eval()
  return model
