"""Orbax checkpoints: a model's weights alone (conversion, warm starts), and training state."""

import os

import jax
import orbax.checkpoint as ocp
from flax import nnx

from emer_jax.errors import UserError

ORBAX_METADATA = "_METADATA"  # the file every Orbax checkpoint folder holds
NOT_ORBAX = (
  f"not an Orbax checkpoint (it holds no {ORBAX_METADATA}); expected a model folder such as "
  "DIR/model of emer_jax.convert or W/checkpoints/fold1_seed0/best/<step>/model"
)


class CheckpointMismatch(UserError, ValueError):
  """A readable checkpoint whose structure, shapes or dtypes differ from the model's."""


def leaf_paths(tree) -> dict:
  """{'face_encoder/conv/kernel': leaf} of a state, abstract state, restored checkpoint or
  Orbax metadata (an nnx Variable's trailing 'value' left out)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    if parts and parts[-1] == "value":
      parts = parts[:-1]
    out["/".join(parts)] = leaf
  return out


def leaf_specs(tree) -> dict[str, tuple]:
  """{'face_encoder/conv/kernel': (shape, dtype)} of a state, abstract state or Orbax metadata."""
  out = {}
  for name, leaf in leaf_paths(tree).items():
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # stored as its key data
      leaf = jax.eval_shape(jax.random.key_data, leaf)
    out[name] = (tuple(leaf.shape), str(leaf.dtype))
  return out


def mismatches(expected: dict, found: dict, limit: int = 8) -> list[str]:
  """What differs between two `leaf_specs`: missing and extra keys, shape and dtype changes."""
  out = [f"{k}: missing from the checkpoint" for k in expected if k not in found]
  out += [f"{k}: in the checkpoint, not in the model" for k in found if k not in expected]
  for k in expected.keys() & found.keys():
    (es, ed), (fs, fd) = expected[k], found[k]
    if es != fs:
      out.append(f"{k}: shape {fs} in the checkpoint, {es} in the model")
    elif ed != fd:
      out.append(f"{k}: dtype {fd} in the checkpoint, {ed} in the model")
  out.sort()
  return out[:limit] + ([f"… {len(out) - limit} more"] if len(out) > limit else [])


def check_matches(directory: str, expected: dict, found: dict, hint: str) -> None:
  differ = mismatches(expected, found)
  if differ:
    raise CheckpointMismatch(
      f"The checkpoint {directory} does not fit the model: {'; '.join(differ)}. {hint}"
    )


def save_model(directory: str, model: nnx.Module) -> None:
  """Writes the model's variables (parameters and batch statistics) as an Orbax checkpoint."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(directory), nnx.state(model), force=True)


def model_metadata(directory: str) -> dict:
  """`leaf_specs` of a `save_model` checkpoint, read from its metadata (no arrays loaded)."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"No model checkpoint at {directory}.")
  if not os.path.isfile(os.path.join(directory, ORBAX_METADATA)):
    raise CheckpointMismatch(f"{directory} is {NOT_ORBAX}.")
  with ocp.StandardCheckpointer() as checkpointer:
    return leaf_specs(checkpointer.metadata(directory).item_metadata)


def restore_model(directory: str, model: nnx.Module) -> nnx.Module:
  """Loads weights written by `save_model` into `model` (same structure), in place."""
  directory = os.path.abspath(directory)
  abstract = nnx.state(model)
  check_matches(
    directory,
    leaf_specs(abstract),
    model_metadata(directory),
    "Set the config's model sizes to the checkpoint's (or use a checkpoint of this model).",
  )
  with ocp.StandardCheckpointer() as checkpointer:
    state = checkpointer.restore(directory, abstract)
  nnx.update(model, state)
  return model
