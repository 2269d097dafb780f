"""Loading the authors' EMERT checkpoints and ImageNet ResNet-18 weights into Flax models."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emer_jax import models
from emer_jax.convert import names
from emer_jax.convert.torch_pickle import load_torch_file


def read_state_dict(path) -> dict[str, np.ndarray]:
  """A PyTorch state dict from `.pth`/`.pt` (read without PyTorch) or `.npz`, as NumPy arrays."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No checkpoint file at {path}.")
  if path.endswith(".npz"):
    with np.load(path) as archive:
      state = {k: archive[k] for k in archive.files}
  else:
    state = load_torch_file(path)
  for wrapper in ("state_dict", "model"):  # training scripts often nest the weights
    if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
      state = state[wrapper]
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise ValueError(f"{path} does not hold a state dict of tensors.")
  return {k.removeprefix("module."): v for k, v in state.items()}


def _flat_variables(module):
  return nnx.to_flat_state(nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat)))


def export_state_dict(tree, name_fn) -> dict[str, np.ndarray]:
  """A module's variables, or a State of them (e.g. gradients), under PyTorch keys and layout."""
  state = (
    tree if isinstance(tree, nnx.State) else nnx.state(tree, nnx.Any(nnx.Param, nnx.BatchStat))
  )
  out = {}
  for path, variable in nnx.to_flat_state(state):
    key, layout = name_fn(path)
    out[key] = names.to_torch(np.asarray(variable[...]), layout)
  return out


def load_state_dict(module, state_dict, name_fn) -> None:
  """Copies `state_dict` into `module` in place; every variable must be matched exactly once.

  Unknown keys, missing keys and shape mismatches are errors that list the keys at fault.
  """
  flat = _flat_variables(module)
  updates, missing, unnamed, mismatched, used = [], [], [], [], set()
  for path, variable in flat:
    try:
      key, layout = name_fn(path)
    except KeyError:
      unnamed.append("/".join(map(str, path)))
      continue
    if key in used:
      raise ValueError(f"Two model variables map to PyTorch key {key!r}; is there one head?")
    used.add(key)
    if key not in state_dict:
      missing.append(key)
      continue
    value = names.to_flax(np.asarray(state_dict[key]), layout)
    if value.shape != variable[...].shape:
      mismatched.append(f"{key}: checkpoint {value.shape}, model {variable[...].shape}")
      continue
    updates.append((path, value.astype(variable[...].dtype)))
  unknown = sorted(k for k in state_dict if k not in used and not names.is_ignored(k))
  problems = [
    (unnamed, "model variables with no PyTorch counterpart"),
    (missing, "keys missing from the checkpoint"),
    (unknown, "unknown keys in the checkpoint"),
    (mismatched, "shape mismatches (after conversion to Flax layout)"),
  ]
  message = "; ".join(f"{what}: {items}" for items, what in problems if items)
  if message:
    raise ValueError(f"Cannot load the checkpoint: {message}.")
  for path, value in updates:
    variable = dict(flat)[path]
    variable.set_value(jnp.asarray(value))
  nnx.update(module, nnx.from_flat_state(flat))


def load_resnet_weights(resnet, path) -> None:
  """Loads ImageNet ResNet-18 weights in torchvision layout (`.pth` or `.npz`) into `resnet`."""
  load_state_dict(resnet, read_state_dict(path), names.resnet_name)


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
