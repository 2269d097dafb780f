"""A workdir whose training was stopped: nothing from it passes for a result.

predict and export refuse it in one line naming the run and its last step; with
--allow_unfinished the report says `"finished": false` and the step used; eval mode's summary
says the run was unfinished and which step it tested.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from emer_jax.predict import model as model_lib
from tests import faults
from tests.conftest import tiny_run_config
from tests.test_train import REPO, main_flags

RUN = "fold1_seed0"


def _steps(workdir, kind) -> list[int]:
  folder = os.path.join(workdir, "checkpoints", RUN, kind)
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit())


@pytest.fixture(scope="module")
def stopped(small_data_dir, tmp_path_factory):
  """The tiny quickstart of 40 steps, stopped by Ctrl-C once it has a checkpoint of step 4
  (validated at step 3, so it has a selected checkpoint too)."""
  workdir = str(tmp_path_factory.mktemp("stopped") / "run")
  cmd = faults.command(
    "emer_jax.main", *main_flags(workdir, small_data_dir, "--config.total_steps=40")
  )
  out = faults.stop(
    cmd, seed=0, within=0.0, after=faults.checkpointed(workdir, 4), sig=signal.SIGINT
  )
  assert out.returncode == 130, out.output
  assert not os.path.exists(os.path.join(workdir, "runs", f"{RUN}.json"))
  return workdir


def _run(*args, cwd=REPO):
  env = os.environ | {"PYTHONPATH": REPO}  # this checkout, from any folder
  return subprocess.run(
    [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
  )


def _recording(data_dir, folder):
  from emer_jax.data.source import open_source
  from emer_jax.predict import samples

  data = open_source("emer/synthetic_small", data_dir, prepare=False)
  samples.write_recording(data.source[0], folder, "P01")


def test_predict_and_export_refuse_in_one_line_naming_the_run_and_its_last_step(
  stopped, small_data_dir, tmp_path
):
  _recording(small_data_dir, tmp_path / "in")
  last, best = _steps(stopped, "latest")[-1], _steps(stopped, "best")[-1]
  expected = (
    f"Error: The run {RUN} (last checkpoint: step {last}, best so far: step {best}) in "
    f"{stopped} did not finish training (no runs/{RUN}.json). Rerun the training command on "
    "this workdir to finish it, or add --allow_unfinished to use the best checkpoint so far.\n"
  )
  for cmd in (
    ("emer_jax.predict", f"--workdir={stopped}", "--input_dir=in", "--output=x.json"),
    ("emer_jax.export", f"--workdir={stopped}", f"--output={tmp_path / 'exported'}"),
  ):
    out = _run(*cmd, cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, expected), out.stdout + out.stderr
  assert os.listdir(tmp_path) == ["in"]  # nothing written
  with pytest.raises(model_lib.UnfinishedRun):
    model_lib.from_workdir(stopped)


def test_allow_unfinished_says_so_and_names_the_step(stopped, small_data_dir, tmp_path):
  _recording(small_data_dir, tmp_path / "in")
  output = tmp_path / "out" / "P01.json"
  out = _run(
    "emer_jax.predict",
    f"--workdir={stopped}",
    "--allow_unfinished",
    f"--input_dir={tmp_path / 'in'}",
    f"--output={output}",
  )
  assert out.returncode == 0, out.stdout + out.stderr
  best = _steps(stopped, "best")[-1]
  model = json.loads(output.read_text())["model"]
  assert model == {"workdir": stopped, "runs": [RUN], "steps": {RUN: best}, "finished": False}
  assert f"wrote predictions: {output}  ({RUN} step {best}; UNFINISHED" in out.stdout


def test_eval_mode_summary_says_the_run_was_unfinished(stopped, small_data_dir):
  from emer_jax.evaluation.summary import summary_lines
  from emer_jax.train import trainer

  config = tiny_run_config(small_data_dir)
  config.total_steps = 40
  config.mode = "eval"
  results = trainer.train_and_evaluate(config, stopped)
  best = _steps(stopped, "best")[-1]
  (run,) = results["runs"]
  assert (run["checkpoint_step"], run["finished"]) == (best, False)
  lines = summary_lines(results, os.path.join(stopped, "eval"))
  assert (
    f"  UNFINISHED: {RUN} did not finish training (no runs/{RUN}.json); these numbers are of "
    f"its checkpoint of step {best}, not of a finished run"
  ) in lines
  assert any(line.startswith(f"  evaluated step {best} (mode eval)") for line in lines), lines
