"""Evaluates or fine-tunes a checkpoint converted from the authors' code.

  python -m emer_jax.convert --checkpoint=emert.pth --output=runs/emert_pth
  python -m emer_jax.main --config=configs/converted.py:runs/emert_pth --config.mode=eval \
      --workdir=runs/emert_pth_eval

The argument is the conversion's output directory. The protocol follows the converted head
(`--target` of the conversion); the dataset defaults to the real release, `emer/real`.
"""

import json
import os

from emer_jax.config import base_config
from emer_jax.protocols import PROTOCOLS


def get_config(arg):
  with open(os.path.join(arg, "config.json")) as f:
    converted = json.load(f)
  heads = tuple(converted.pop("heads"))
  c = base_config("reference")
  c.model.update(converted)
  c.dataset = "emer/real"
  matching = [p.name for p in PROTOCOLS.values() if p.targets + p.auxiliary == heads]
  if not matching:
    raise ValueError(f"{arg}/config.json: no protocol predicts exactly the heads {heads}.")
  c.protocol = matching[0]
  c.init_checkpoint = os.path.join(arg, "model")
  c.input.channel_order = "bgr"
  c.input.flip = False
  return c
