"""Converts an authors' EMERT checkpoint (.pth or .npz) to an Orbax model checkpoint.

  python -m emer_jax.convert --checkpoint=X.pth --output=runs/DIR [--target=er_emotion]

writes DIR/model (load with `--config.init_checkpoint=DIR/model`) and DIR/config.json (the
model config, variant 'reference', plus the head it was converted with under `heads`). The
conversion is written to a sibling folder and swapped in whole, so a killed conversion leaves an
earlier one in DIR as it was.
"""

import contextlib
import ctypes
import json
import os
import shutil

from absl import flags

from emer_jax import cli, logs, paths
from emer_jax.convert.checkpoints import load_reference_checkpoint
from emer_jax.train.checkpoint import save_model

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Authors' state dict, .pth or .npz.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to write model/ and config.json to.")
_TARGET = flags.DEFINE_string("target", "er_emotion", "Target name of the checkpoint's head.")
OUTPUTS = ("model", "config.json")


def convert_checkpoint(checkpoint, output, target="er_emotion"):
  """Writes `output`/model and `output`/config.json; returns the loaded model."""
  output = os.path.abspath(output)
  paths.check_writable_dir(output, "--output")
  model, config = load_reference_checkpoint(checkpoint, target=target)
  parent, name = os.path.split(output)
  os.makedirs(parent, exist_ok=True)
  for entry in os.listdir(parent):  # left by a killed conversion: ours, not the user's
    if entry.startswith(f".{name}.converting-"):
      shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
  staging = os.path.join(parent, f".{name}.converting-{os.getpid()}")
  description = config.to_dict() | {"heads": {n: h.shape[-1] for n, h in _head_sizes(model)}}
  try:
    with paths.writing(output, "the converted model"):
      os.makedirs(staging)
      save_model(os.path.join(staging, "model"), model)
    with paths.writing(os.path.join(output, "config.json"), "the model config"):
      with open(os.path.join(staging, "config.json"), "w") as f:
        json.dump(description, f, indent=2)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  _swap_in(staging, output)
  return model


def _exchange(a: str, b: str) -> bool:
  """Swaps two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
  with contextlib.suppress(AttributeError, OSError):
    renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, a.encode(), at_fdcwd, b.encode(), rename_exchange) == 0
  return False


def _swap_in(staging: str, output: str) -> None:
  """Makes `staging` the folder `output`; entries of an old `output` other than OUTPUTS stay."""
  if not os.path.exists(output):
    os.rename(staging, output)
    return
  if not _exchange(staging, output):  # two renames: a kill between them keeps `old`
    old = staging + ".old"
    os.rename(output, old)
    os.rename(staging, output)
    staging = old
  for entry in os.listdir(staging):  # `staging` now holds the old conversion
    if entry not in OUTPUTS:
      os.rename(os.path.join(staging, entry), os.path.join(output, entry))
  shutil.rmtree(staging)


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
  cli.run(main, user_errors=(ValueError,))
