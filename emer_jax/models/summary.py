"""Parameter counts of a model, per module and in total.

python -m emer_jax.models.summary --config=configs/x.py   # a config with a `model` field
python -m emer_jax.models.summary --variant=reference [--heads=er_emotion]
"""

import collections

import jax
from absl import flags
from flax import nnx
from ml_collections import config_flags

from emer_jax import logs, models, protocols

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with a `model` field.")
_VARIANT = flags.DEFINE_string("variant", "reference", "Model variant, when no --config.")
_HEADS = flags.DEFINE_list("heads", None, "Target names; default: the config's protocol.")
_DEPTH = flags.DEFINE_integer("depth", 2, "How many levels of the module tree to break down.")


def parameter_counts(model, depth=2) -> dict[str, int]:
  """Parameter count per module path, up to `depth` modules deep."""
  counts = collections.Counter()
  for path, param in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    modules = [str(p) for i, p in enumerate(path[:-1]) if i == 0 or p != path[i - 1]]
    counts["/".join(modules[:depth])] += param.size
  return dict(counts)


def summarize(model_config, heads, depth=2) -> str:
  model = nnx.eval_shape(lambda: models.build_model(model_config, heads=heads, rngs=nnx.Rngs(0)))
  counts = parameter_counts(model, depth)
  total = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  width = max(map(len, counts), default=0)
  lines = [f"{model_config.variant}, heads {heads}"]
  lines += [f"  {name:<{width}}  {n:>12,}" for name, n in counts.items()]
  lines.append(f"  {'total':<{width}}  {total:>12,}")
  return "\n".join(lines)


def main(argv):
  del argv
  config = _CONFIG.value
  model_config = config.model if config is not None else models.get_config(_VARIANT.value)
  targets = _HEADS.value
  if targets is None:
    protocol = config.get("protocol") if config is not None else None
    targets = ["er_emotion"]
    if protocol:
      p = protocols.get_protocol(protocol)
      targets = [*p.targets, *p.auxiliary, *config.get("extra_targets", ())]
  print(summarize(model_config, protocols.head_sizes(targets), _DEPTH.value))


if __name__ == "__main__":
  logs.run(main)
