"""FER valence and arousal regression: MAE, MSE, RMSE, PCC, CCC per dimension.

  python -m emer_jax.main --config=configs/protocols/fer_va.py[:OPTIONS] --workdir=W

OPTIONS, comma-separated: small, multitask, variant=NAME (`emer_jax.config.protocol_config`).
"""

from emer_jax.config import protocol_config


def get_config(arg=""):
  return protocol_config("fer_va", arg)
