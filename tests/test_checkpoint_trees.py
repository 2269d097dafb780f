"""Workdirs written by earlier code keep working: today's code reads the checkpoint trees recorded
in tests/fixtures/checkpoint_trees.json (item names, leaf paths, shapes and dtypes of a host and
a device run of `tiny_run_config`, written by the code of d9a531f with
tests/fixtures/record_checkpoint_trees.py). A change to a tree fails here first: the reader must
then migrate the old tree on load."""

import json
import os

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from emer_jax.protocols import head_sizes
from emer_jax.train import checkpoint, multi_run, run_checkpoints
from emer_jax.train import state as state_lib
from tests.conftest import tiny_run_config

TREES = json.load(
  open(os.path.join(os.path.dirname(__file__), "fixtures", "checkpoint_trees.json"))
)


def _specs(recorded: dict) -> dict:
  return {k: (tuple(shape), dtype) for k, (shape, dtype) in recorded.items()}


@pytest.fixture(scope="module")
def abstracts():
  """Today's abstract training states of the recorded config: host and device."""
  config = tiny_run_config("unused")
  config.model.face_encoder.num_frames = 8  # the quickstart's when the trees were recorded
  heads = head_sizes(state_lib.run_targets(config))
  _, host, _ = state_lib.init_state(config, heads, 0, 6, state_lib.make_mesh(config))
  _, device = multi_run.abstract_state(config, heads)
  return {"host": host, "device": device}


@pytest.mark.parametrize("placement", ["host", "device"])
def test_todays_model_and_items_fit_the_recorded_checkpoints(abstracts, placement):
  abstract, recorded = abstracts[placement], TREES[placement]
  specs = checkpoint.leaf_specs(abstract)
  assert checkpoint.mismatches(specs, _specs(recorded["latest"]["state"])) == []
  assert checkpoint.mismatches(
    checkpoint.leaf_specs(abstract["model"]), _specs(recorded["best"]["model"])
  ) == []  # fmt: skip
  assert recorded["latest"]["items"] == sorted(
    ["state", run_checkpoints.PLACEMENT_ITEMS[placement]]
  )
  assert recorded["best"]["items"] == ["meta", "model"]


def test_a_device_checkpoint_of_the_recorded_tree_resumes_with_its_best(abstracts, tmp_path):
  abstract = abstracts["device"]
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), abstract)
  options = ocp.CheckpointManagerOptions(create=True)
  with ocp.CheckpointManager(tmp_path / "latest", options=options) as latest:
    latest.save(
      6,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(zeros),
        placement=ocp.args.JsonSave({"input.placement": "device", "step": 6}),
      ),
    )
  with ocp.CheckpointManager(tmp_path / "best", options=options) as best:
    run_checkpoints.save_best(best, 3, zeros, 0.5)
  with (
    ocp.CheckpointManager(tmp_path / "latest", options=options) as latest,
    ocp.CheckpointManager(tmp_path / "best", options=options) as best,
  ):
    step, state = run_checkpoints.restore_latest(latest, abstract, {}, "device")
    assert step == 6 and checkpoint.leaf_specs(state) == checkpoint.leaf_specs(abstract)
    assert run_checkpoints.recorded_best(best) == (3, 0.5)
    model = run_checkpoints.restore_best_model(best, 3, abstract)
    assert checkpoint.leaf_specs(model) == checkpoint.leaf_specs(abstract["model"])
