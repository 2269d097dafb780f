"""Runs trained together with the data on the devices, through the trainer (8 fake CPU devices):
together equals alone, a killed parallel job resumes bit-exactly, and a checkpoint of the other
placement is refused by name and left in place."""

import json
import os
import re
import shutil
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from emer_jax import protocols
from emer_jax import workdir as workdir_lib
from emer_jax.train import checkpoint, run_checkpoints, trainer
from emer_jax.train import state as state_lib
from tests import faults
from tests.test_train import TINY, tiny_config

# Two folds × two seeds, eye streams only (no ResNet to compile); one epoch is 7 steps of fold
# 1 and 8 of fold 4, so runs of a group stop at different steps.
ARGS = [
  "--config.folds=(1,4)",
  "--config.seeds=(0,1)",
  "--config.num_epochs=1",
  "--config.log_every_steps=2",
  "--config.checkpoint_every_steps=2",
  "--config.eval_every_steps=3",
  "--config.steps_per_call=2",
  "--config.model.modalities=('eye','gaze')",
  "--config.input.placement=device",
]


def _config(data_dir, *extra):
  c = tiny_config(data_dir)
  for flag in ARGS[:-2] + list(extra):
    key, value = flag.removeprefix("--config.").split("=", 1)
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = eval(value) if value[0] in "(0123456789" else value
  c.model.modalities = ("eye", "gaze")
  c.input.placement = "device"
  return c


def _train(data_dir, workdir, **overrides):
  config = _config(data_dir)
  for key, value in overrides.items():
    config[key] = value
  trainer.train_and_evaluate(config, str(workdir))
  return str(workdir)


def _losses(workdir) -> dict:
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {(r["fold"], r["seed"], r["step"]): r["train/loss/total"] for r in rows if "train/loss/total" in r}  # fmt: skip


def _results(workdir) -> dict:
  return json.load(open(os.path.join(workdir, "results.json")))


@pytest.fixture(scope="module")
def together(small_data_dir, tmp_path_factory):
  return _train(small_data_dir, tmp_path_factory.mktemp("together"), parallel_runs=0)


@pytest.mark.slow
def test_runs_trained_together_equal_runs_trained_alone(together, small_data_dir, tmp_path):
  alone = _train(small_data_dir, tmp_path / "alone", parallel_runs=1)
  a, b = _losses(together), _losses(alone)
  assert a.keys() == b.keys() and len({(f, s) for f, s, _ in a}) == 4
  assert max(k[2] for k in a if k[0] == 1) == 7 and max(k[2] for k in a if k[0] == 4) == 8
  np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(a)], rtol=1e-3)
  ra, rb = _results(together), _results(alone)
  key = lambda r: (r["fold"], r["seed"])  # noqa: E731
  for x, y in zip(sorted(ra["runs"], key=key), sorted(rb["runs"], key=key), strict=True):
    assert x["selected_step"] == y["selected_step"]
    assert x["num_train"] == y["num_train"] and x["num_test"] == y["num_test"]
    war = x["metrics"]["er_emotion"]["war"], y["metrics"]["er_emotion"]["war"]
    assert abs(war[0] - war[1]) <= 1 / x["num_test"] + 1e-9, war
  assert [key(r) for r in ra["runs"]] == [(1, 0), (4, 0), (1, 1), (4, 1)]
  for fold, seed in key_list(ra):
    name = workdir_lib.run_name(fold, seed)
    assert os.path.exists(os.path.join(together, "runs", f"{name}.normalisation.json"))
    assert os.path.exists(os.path.join(together, f"predictions_{name}.csv"))
    assert os.listdir(os.path.join(together, "tensorboard", name))
    assert os.listdir(os.path.join(together, "checkpoints", name, "best"))
  # Each run has its own training statistics.
  stats = [json.load(open(os.path.join(together, "runs", f"fold{f}_seed0.normalisation.json")))
           for f in (1, 4)]  # fmt: skip
  assert stats[0]["eye_mean"] != stats[1]["eye_mean"]


def key_list(results):
  return [(r["fold"], r["seed"]) for r in results["runs"]]


def _main(workdir, data_dir):
  return faults.command("emer_jax.main", "--config=configs/quickstart.py", f"--workdir={workdir}",
                        f"--config.data_dir={data_dir}", "--config.parallel_runs=0", *TINY, *ARGS)  # fmt: skip


@pytest.mark.slow
def test_a_parallel_job_stopped_by_ctrl_c_then_killed_resumes_bit_exactly(
  together, small_data_dir, tmp_path
):
  workdir = str(tmp_path / "w")
  cmd = _main(workdir, small_data_dir)
  stopped = faults.stop(
    cmd, seed=0, within=0.0, after=faults.checkpointed(workdir, 2), sig=signal.SIGINT
  )
  assert stopped.returncode == 130, stopped.output
  faults.assert_clean_exit(stopped.output)
  runs = "fold1_seed0, fold4_seed0, fold1_seed1, fold4_seed1"
  message = re.fullmatch(
    rf"Interrupted {runs} at step (\d) of 8; the last checkpoint is step (\d)\. Rerun the same "
    r"command to resume\.",
    stopped.output.rstrip().splitlines()[-1],
  )
  assert message and 2 <= int(message[2]) <= int(message[1]) < 7, stopped.output

  killed = faults.stop(cmd, seed=0, within=0.0, after=faults.checkpointed(workdir, 6))
  assert killed.returncode == -signal.SIGKILL, "the job ended before it was killed"
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  faults.assert_clean_exit(faults.finish(cmd))
  assert _losses(workdir) == _losses(together)
  assert _results(workdir)["runs"] == _results(together)["runs"]


def _tree(directory):
  return sorted(os.path.relpath(os.path.join(d, f), directory)
                for d, _, files in os.walk(directory) for f in files)  # fmt: skip


@pytest.mark.slow
def test_a_checkpoint_of_the_other_placement_is_refused_and_left(
  together, small_data_dir, tmp_path
):
  # A device run's checkpoints, the run unfinished, resumed on the host.
  workdir = str(tmp_path / "w")
  shutil.copytree(together, workdir)
  os.remove(os.path.join(workdir, "runs", "fold1_seed0.json"))
  before = _tree(os.path.join(workdir, "checkpoints"))
  config = _config(small_data_dir)
  config.input.placement = "host"
  with pytest.raises(run_checkpoints.PlacementMismatch, match=r"fold1_seed0/latest/\d+ was written .*"
                     r"input.placement='device'.*--config.input.placement=device"):  # fmt: skip
    trainer.train_and_evaluate(config, workdir)
  # And a host run's, resumed with the data on the devices.
  host = str(tmp_path / "host")
  config = _config(small_data_dir, "--config.folds=(1,)", "--config.seeds=(0,)",
                   "--config.total_steps=2")  # fmt: skip
  config.input.placement = "host"
  trainer.train_and_evaluate(config, host)
  os.remove(os.path.join(host, "runs", "fold1_seed0.json"))
  host_before = _tree(os.path.join(host, "checkpoints"))
  config.input.placement = "device"
  with pytest.raises(run_checkpoints.PlacementMismatch, match=r"input.placement='host'"):
    trainer.train_and_evaluate(config, host)
  assert _tree(os.path.join(workdir, "checkpoints")) == before
  assert _tree(os.path.join(host, "checkpoints")) == host_before
  assert not os.path.exists(os.path.join(host, "checkpoints", "fold1_seed0", "unreadable"))


@pytest.mark.slow
def test_eval_mode_reads_a_device_runs_best_and_latest(together, small_data_dir, tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(together, workdir)
  best = os.path.join(workdir, "checkpoints", "fold1_seed0", "best")
  shutil.rmtree(best)
  config = _config(small_data_dir)
  config.mode = "eval"
  evaluated = trainer.train_and_evaluate(config, workdir)
  runs = {(r["fold"], r["seed"]): r for r in evaluated["runs"]}
  assert runs[(1, 0)]["evaluated"].endswith("fold1_seed0/latest/7")
  assert runs[(4, 1)]["evaluated"].endswith("fold4_seed1/best/" + str(
    next(r["selected_step"] for r in _results(together)["runs"] if (r["fold"], r["seed"]) == (4, 1))
  ))  # fmt: skip
  # Tested on the host from `best`, a run scores what its device-side test recorded.
  for trained in _results(together)["runs"]:
    key = (trained["fold"], trained["seed"])
    if key != (1, 0):
      war = runs[key]["metrics"]["er_emotion"]["war"], trained["metrics"]["er_emotion"]["war"]
      assert abs(war[0] - war[1]) <= 1 / trained["num_test"] + 1e-9, (key, war)
  # The weights evaluated are the ones `latest` holds.
  _, abstract, state = state_lib.init_state(
    config, protocols.head_sizes(state_lib.run_targets(config)), 0, 0, state_lib.make_mesh(config)
  )
  latest = os.path.join(workdir, "checkpoints", "fold1_seed0", "latest")
  loaded, _ = run_checkpoints.load_for_eval(("latest", latest, 7), abstract, state)
  with ocp.PyTreeCheckpointer() as checkpointer:
    raw = checkpointer.restore(os.path.join(latest, "7", "state"))["model"]
  a, b = _leaves(loaded["model"]), _leaves(raw)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _leaves(tree) -> dict:
  """{path: array} of a state or a restored checkpoint, RNG keys as their data."""
  is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
  return {
    name: np.asarray(jax.random.key_data(x) if is_key(x) else x)
    for name, x in checkpoint.leaf_paths(tree).items()
  }


@pytest.mark.slow
def test_runs_trained_together_start_from_init_checkpoint(together, small_data_dir, tmp_path):
  best = os.path.join(together, "checkpoints", "fold1_seed0", "best")
  model = os.path.join(best, max(os.listdir(best), key=lambda n: int(n) if n.isdigit() else -1),
                       "model")  # fmt: skip
  workdir = str(tmp_path / "w")
  config = _config(small_data_dir, "--config.seeds=(0,)", "--config.total_steps=2")
  config.init_checkpoint = model
  config.learning_rate = 1e-9
  trainer.train_and_evaluate(config, workdir)
  with ocp.PyTreeCheckpointer() as checkpointer:
    start = _leaves(checkpointer.restore(model))
    for fold in (1, 4):
      latest = os.path.join(workdir, "checkpoints", f"fold{fold}_seed0", "latest", "2", "state")
      trained = _leaves(checkpointer.restore(latest)["model"])
      assert trained.keys() == start.keys()
      for k in start:  # the weights; the dropout streams' counters move on
        if np.issubdtype(start[k].dtype, np.floating):
          np.testing.assert_allclose(trained[k], start[k], atol=1e-6, err_msg=k)
