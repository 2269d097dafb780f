"""Orbax checkpoints: a model's weights alone (conversion, warm starts), and training state."""

import os

import orbax.checkpoint as ocp
from flax import nnx


def save_model(directory: str, model: nnx.Module) -> None:
  """Writes the model's variables (parameters and batch statistics) as an Orbax checkpoint."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(directory), nnx.state(model), force=True)


def restore_model(directory: str, model: nnx.Module) -> nnx.Module:
  """Loads weights written by `save_model` into `model` (same structure), in place."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"No model checkpoint at {directory}.")
  abstract = nnx.state(model)
  with ocp.StandardCheckpointer() as checkpointer:
    state = checkpointer.restore(directory, abstract)
  nnx.update(model, state)
  return model
