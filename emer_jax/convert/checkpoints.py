"""Loading the authors' EMERT checkpoints into Flax models, and running them as their code does."""

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emer_jax import models
from emer_jax.convert import names
from emer_jax.convert.state_dict import load_state_dict, read_state_dict


def reference_config(state_dict, **overrides):
  """The reference model config matching a reference state dict (depth read from its keys)."""
  config = models.get_config("reference")
  layers = {int(m.group(1)) for k in state_dict if (m := re.search(r"Encoder\.layers\.(\d+)\.", k))}
  if layers:
    config.transformer.depth = max(layers) + 1
  config.update_from_flattened_dict(overrides)
  return config


def load_reference_checkpoint(path, *, target="er_emotion", dtype=jnp.float32, **config_overrides):
  """Builds the reference EMERT for a checkpoint of the authors' code and loads it.

  The head is named `target`; its size comes from the checkpoint. `config_overrides` are dotted
  model-config keys (e.g. `**{'transformer.depth': 2}`). Returns (model in eval mode, config).
  """
  state_dict = read_state_dict(path)
  heads = sorted(k for k in state_dict if re.fullmatch(r"cls_head\.\d+\.weight", k))
  if not heads:
    raise ValueError(f"{path}: no cls_head.*.weight keys; is this an EMERT checkpoint?")
  num_outputs = state_dict[max(heads, key=lambda k: int(k.split(".")[1]))].shape[0]
  config = reference_config(state_dict, **config_overrides)
  model = models.build_model(config, heads={target: num_outputs}, rngs=nnx.Rngs(0), dtype=dtype)
  load_state_dict(model, state_dict, names.emert_name)
  model.eval()
  return model, config


@nnx.jit
def _forward(model, face, eye, gaze):
  outputs = model({"face": face, "eye": eye, "gaze": gaze}, grl_lambda=1.0, return_tokens=True)
  face_feat = model.encoders.encoders["face"].frame_features(face)
  return outputs, face_feat


def reference_forward(model, face_nchw, eye, gaze) -> dict[str, np.ndarray]:
  """Runs `model` on inputs in the reference convention; keys as in `reference_emert_io.npz`.

  `face_nchw` (B, T, 3, H, W) is transposed to NHWC; channel order is kept. Matrix products
  run at full float32 precision: a GPU's default (TF32) moved the reference fixtures' face
  features by 5e-4 relative on an H200, against 6e-7 at full precision.
  """
  face_nchw = np.asarray(face_nchw)
  if face_nchw.ndim != 5 or face_nchw.shape[2] != 3:
    raise ValueError(f"face_nchw has shape {face_nchw.shape}; expected (B, T, 3, H, W).")
  face = jnp.asarray(face_nchw.transpose(0, 1, 3, 4, 2))
  with jax.default_matmul_precision("highest"):
    outputs, face_feat = _forward(model, face, jnp.asarray(eye), jnp.asarray(gaze))
  (head,) = outputs["heads"].values()
  result = {
    "act/face_feat": face_feat,
    "act/eye_feat": outputs["features"]["eye"],
    "act/gaze_feat": outputs["features"]["gaze"],
    "act/fused_tokens": outputs["fused_tokens"],
    "out/emotion_logits": head,
  }
  for part, logits in (("inv", outputs["invariant_logits"]), ("spec", outputs["specific_logits"])):
    for m, modality in enumerate(model.modalities):
      result[f"out/{part}_{modality}_logits"] = logits[m]
  return {k: np.asarray(v) for k, v in result.items()}
