"""PyTorch state dicts: read (`.pth` without PyTorch, or `.npz`), exported from and loaded into
Flax modules, and ImageNet ResNet-18 weights loaded into a ResNet."""

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

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
