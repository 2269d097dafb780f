"""FER 7-class (displayed expression): WAR, UAR, weighted and macro F1, confusion matrix.

  python -m emer_jax.main --config=configs/protocols/fer7.py[:OPTIONS] --workdir=W

OPTIONS, comma-separated: small, multitask, variant=NAME (`emer_jax.config.protocol_config`).
"""

from emer_jax.config import protocol_config


def get_config(arg=""):
  return protocol_config("fer7", arg)
