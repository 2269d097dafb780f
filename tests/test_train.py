"""Training end to end on EMER-Sim small: steps on the 8-device mesh, main, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emer_jax import models
from emer_jax.data import pipeline
from emer_jax.data.source import open_source
from emer_jax.train import optim, steps
from emer_jax.train import state as state_lib
from tests.faults import assert_clean_exit
from tests.noise import assert_quiet
from tests.test_writers import scalar_events

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A narrow EMERT so that a step compiles and runs in seconds on a CPU.
TINY = [
  "--config.model.face_encoder.widths=(4,8,8,8)",
  "--config.model.feature_dim=16",
  "--config.model.token_dim=16",
  "--config.model.transformer.num_heads=2",
  "--config.model.transformer.head_dim=8",
  "--config.model.transformer.mlp_dim=16",
  "--config.model.sequence_encoder.num_layers=1",
]


def tiny_config(data_dir):
  from configs.quickstart import get_config

  c = get_config()
  c.data_dir = data_dir
  for flag in TINY:
    key, value = flag.removeprefix("--config.").split("=")
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = eval(value)
  return c


def test_train_steps_decrease_the_loss_on_8_devices(small_data_dir):
  config = tiny_config(small_data_dir)
  config.learning_rate = 1e-2
  mesh = state_lib.make_mesh(config)
  assert mesh.shape == {"data": 8, "model": 1}
  data = open_source(config.dataset, small_data_dir, prepare=False)
  targets = state_lib.run_targets(config)
  data = pipeline.with_normalisation(data, np.arange(len(data)), config)
  batch = next(iter(pipeline.train_dataset(data, np.arange(len(data)), config, targets, seed=0)))
  with jax.set_mesh(mesh):
    model = models.build_model(config.model, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optim.make_optimizer(config, 100), wrt=nnx.Param)
    graphdef, state = nnx.split({"model": model, "optimizer": optimizer})
    step = steps.make_train_step(
      graphdef, dtype=jnp.float32, alpha=0.01, beta=0.01, head_weights={}
    )
    batch = pipeline.to_global(batch, mesh)
    losses = []
    for _ in range(20):
      state, metrics = step(state, batch, jnp.float32(1.0))
      losses.append(float(metrics["loss/total"]))
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.8 * losses[0], losses
  assert {"loss/invariant", "loss/specific", "discriminator/accuracy_invariant"} <= set(metrics)


def main_flags(workdir, data_dir, *extra) -> list[str]:
  """`python -m emer_jax.main`'s flags for a tiny 6-step quickstart (conftest's
  `tiny_run_config` as a command)."""
  return [
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    f"--config.data_dir={data_dir}",
    "--config.total_steps=6",
    "--config.log_every_steps=2",
    "--config.checkpoint_every_steps=2",
    "--config.eval_every_steps=3",
    *TINY,
    *extra,
  ]


def _main(workdir, data_dir, *extra):
  cmd = [sys.executable, "-m", "emer_jax.main", *main_flags(workdir, data_dir, *extra)]
  env = os.environ | {"JAX_PLATFORMS": ""}  # as a user runs it: jax looks for accelerators
  return subprocess.Popen(
    cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
  )


def _finish(proc):
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out
  assert_clean_exit(out)
  return out


def losses(workdir):
  """[(step, total training loss)] of metrics.jsonl's logged steps."""
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r["train/loss/total"]) for r in rows if "train/loss/total" in r]


@pytest.mark.slow
def test_main_end_to_end_and_exact_resume_after_sigkill(small_data_dir, tmp_path):
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  out = _finish(_main(full, small_data_dir))
  for name in ("config.json", "metrics.jsonl", "results.json", "predictions_fold1_seed0.csv"):
    assert os.path.exists(os.path.join(full, name)), name
  assert os.listdir(os.path.join(full, "tensorboard", "fold1_seed0"))
  assert os.listdir(os.path.join(full, "checkpoints", "fold1_seed0", "latest"))
  results = json.load(open(os.path.join(full, "results.json")))
  war = results["runs"][0]["metrics"]["er_emotion"]["war"]
  assert 0.0 <= war <= 1.0 and results["mean"]["er_emotion/war"] == war
  assert_quiet(out)
  events = scalar_events(os.path.join(full, "tensorboard", "fold1_seed0"))
  assert {"val/loss/task", "test/er_emotion/war"} <= set(events)
  assert "fold1_seed0: compiling the train step" in out
  lines = out.rstrip().splitlines()
  assert lines[-7].startswith("er7 · reference (face+eye+gaze) · emer/synthetic_small: 1 run")
  assert lines[-6].startswith(f"  er_emotion  WAR {war:.3f}") and "chance 0.143" in lines[-6]
  selected = results["runs"][0]["selected_step"]
  assert lines[-4].startswith(f"  selected step {selected} · test samples 38")
  assert lines[-3].startswith(f"wrote results: {full}/results.md")
  assert lines[-2] == f"wrote plots: {full}/plots/  ({len(os.listdir(f'{full}/plots'))} files)"
  assert lines[-1].startswith(f"wrote logs: {full}/tensorboard/")
  assert [s for s, _ in losses(full)] == [2, 4, 6]

  proc = _main(killed, small_data_dir)
  latest = os.path.join(killed, "checkpoints", "fold1_seed0", "latest")
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if os.path.isdir(latest) and any(d.isdigit() and int(d) >= 2 for d in os.listdir(latest)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(killed, "results.json"))
  out = _finish(_main(killed, small_data_dir))
  assert losses(killed) == losses(full)
  assert json.load(open(os.path.join(killed, "results.json"))) == results

  # A finished workdir is not trained again.
  before = os.path.getmtime(os.path.join(full, "runs", "fold1_seed0.json"))
  _finish(_main(full, small_data_dir))
  assert os.path.getmtime(os.path.join(full, "runs", "fold1_seed0.json")) == before


def test_unknown_config_key_is_one_line_naming_the_nearest(small_data_dir, tmp_path):
  proc = _main(str(tmp_path), small_data_dir, "--config.learning_rat=0.1")
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert out.strip() == "Error: Unknown config key 'learning_rat': did you mean learning_rate?"
  assert not os.listdir(tmp_path)
