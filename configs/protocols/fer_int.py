"""FER intensity regression with a 7-class auxiliary head (the authors' intensity
model, loss weights (0.3, 0.1, 1.0)): MAE, MSE, RMSE, PCC, CCC.

  python -m emer_jax.main --config=configs/protocols/fer_int.py[:OPTIONS] --workdir=W

OPTIONS, comma-separated: small, multitask, variant=NAME (`emer_jax.config.protocol_config`).
"""

from emer_jax.config import protocol_config


def get_config(arg=""):
  return protocol_config("fer_int", arg)
