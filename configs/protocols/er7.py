"""ER 7-class (genuine emotion): WAR, UAR, weighted and macro F1, confusion matrix.

  python -m emer_jax.main --config=configs/protocols/er7.py[:OPTIONS] --workdir=W

OPTIONS, comma-separated: small, multitask, variant=NAME (`emer_jax.config.protocol_config`).
"""

from emer_jax.config import protocol_config


def get_config(arg=""):
  return protocol_config("er7", arg)
