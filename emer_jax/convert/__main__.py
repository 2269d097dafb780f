"""Converts an authors' EMERT checkpoint (.pth or .npz) to an Orbax model checkpoint.

  python -m emer_jax.convert --checkpoint=X.pth --output=runs/DIR [--target=er_emotion]

writes DIR/model (load with `--config.init_checkpoint=DIR/model`) and DIR/config.json (the
model config, variant 'reference', plus the head it was converted with under `heads`).
"""

import json
import os

from absl import flags

from emer_jax import logs
from emer_jax.convert.checkpoints import load_reference_checkpoint
from emer_jax.train.checkpoint import save_model

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Authors' state dict, .pth or .npz.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to write model/ and config.json to.")
_TARGET = flags.DEFINE_string("target", "er_emotion", "Target name of the checkpoint's head.")


def convert_checkpoint(checkpoint, output, target="er_emotion"):
  """Writes `output`/model and `output`/config.json; returns the loaded model."""
  model, config = load_reference_checkpoint(checkpoint, target=target)
  os.makedirs(output, exist_ok=True)
  save_model(os.path.join(output, "model"), model)
  description = config.to_dict() | {"heads": {n: h.shape[-1] for n, h in _head_sizes(model)}}
  with open(os.path.join(output, "config.json"), "w") as f:
    json.dump(description, f, indent=2)
  return model


def _head_sizes(model):
  for name, head in model.heads.heads.items():
    yield name, head.layers[-1].bias[...]


def main(argv):
  del argv
  logs.phase(f"converting {_CHECKPOINT.value}")
  convert_checkpoint(_CHECKPOINT.value, _OUTPUT.value, _TARGET.value)
  model = os.path.join(_OUTPUT.value, "model")
  logs.wrote("model", model, f"use with --config.init_checkpoint={model}")
  logs.wrote("model config", os.path.join(_OUTPUT.value, "config.json"))


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "output"])
  logs.run(main)
