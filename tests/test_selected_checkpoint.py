"""The weights a run is tested with are found one way (`run_checkpoints.selected_checkpoint`), by
eval mode and by the robustness protocol."""

import json
import os

import orbax.checkpoint as ocp

from emer_jax import workdir as workdir_lib
from emer_jax.train import run_checkpoints


def test_best_else_latest_at_the_step_asked(finished, tmp_path):
  workdir, _ = finished
  run_dir = workdir_lib.checkpoints_dir(workdir, "fold1_seed0")
  with open(workdir_lib.results_path(workdir)) as f:
    selected = json.load(f)["runs"][0]["selected_step"]
  best, latest = os.path.join(run_dir, "best"), os.path.join(run_dir, "latest")
  assert run_checkpoints.selected_checkpoint(run_dir) == ("best", best, selected)
  assert run_checkpoints.selected_checkpoint(run_dir, selected) == ("best", best, selected)
  other = max(set(ocp.utils.checkpoint_steps(latest)) - {selected})
  assert run_checkpoints.selected_checkpoint(run_dir, other) == ("latest", latest, other)
  assert run_checkpoints.selected_checkpoint(run_dir, 10**6) is None
  assert run_checkpoints.selected_checkpoint(str(tmp_path / "no_run")) is None


def test_eval_mode_and_robustness_use_it(finished, monkeypatch, tmp_path):
  import shutil

  from emer_jax.evaluation import robustness
  from emer_jax.train import eval_mode
  from emer_jax.train import state as state_lib

  workdir, config = str(tmp_path / "w"), finished[1]
  shutil.copytree(finished[0], workdir)  # eval mode writes W/eval/
  asked = []
  found = run_checkpoints.selected_checkpoint

  def spy(run_dir, step=None):
    asked.append((run_dir, step))
    return found(run_dir, step)

  monkeypatch.setattr(run_checkpoints, "selected_checkpoint", spy)
  with open(workdir_lib.results_path(workdir)) as f:
    run = json.load(f)["runs"][0]
  mesh = state_lib.make_mesh(config)
  robustness.selected_state(config, workdir, run, state_lib.run_targets(config), mesh)
  eval_config = config.copy_and_resolve_references()
  eval_config.mode = "eval"
  eval_mode.evaluate(eval_config, workdir, eval_mode.sources(eval_config, workdir))
  run_dir = workdir_lib.checkpoints_dir(workdir, "fold1_seed0")
  assert asked == [(run_dir, run["selected_step"]), (run_dir, None)]
