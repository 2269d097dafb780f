"""ER valence and arousal regression: MAE, MSE, RMSE, PCC, CCC per dimension.

  python -m emer_jax.main --config=configs/protocols/er_va.py[:OPTIONS] --workdir=W

OPTIONS, comma-separated: small, multitask, variant=NAME (`emer_jax.config.protocol_config`).
"""

from emer_jax.config import protocol_config


def get_config(arg=""):
  return protocol_config("er_va", arg)
