"""Scaling: meshes, bf16, two processes, non-finite stop, corrupt checkpoints, the benchmark."""

import functools
import json
import logging
import os
import re
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import AxisType

from emer_jax.data import pipeline
from emer_jax.data.source import open_source
from emer_jax.protocols import head_sizes
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib
from emer_jax.train import steps, trainer
from tests.conftest import tiny_run_config
from tests.test_train import REPO, TINY, tiny_config


def _mesh(data, model):
  devices = jax.devices()[: data * model]
  return jax.make_mesh((data, model), ("data", "model"), (AxisType.Auto,) * 2, devices=devices)


@pytest.fixture(scope="module")
def tiny_run(small_data_dir):
  """(config, targets, batches): a one-block EMERT and three training batches."""
  config = tiny_config(small_data_dir)
  config.model.face_encoder.blocks = (1, 1, 1, 1)  # each mesh compiles its own step: keep it small
  config.model.transformer.depth = 1
  data = open_source(config.dataset, small_data_dir, prepare=False)
  targets = state_lib.run_targets(config)
  data = pipeline.with_normalisation(data, np.arange(len(data)), config)
  ds = iter(pipeline.train_dataset(data, np.arange(len(data)), config, targets, seed=0))
  return config, targets, [next(ds) for _ in range(3)]


def _train_step(config, targets, mesh):
  """(step, state): the jitted train step and a fresh state laid out on `mesh`."""
  graphdef, _, state = state_lib.init_state(config, head_sizes(targets), 0, 100, mesh)
  step = steps.make_train_step(
    graphdef, dtype=jnp.dtype(config.dtype), alpha=0.01, beta=0.01, head_weights={}
  )
  return step, state


@pytest.fixture(scope="module")
def train(tiny_run):
  """train(data, model, dtype) -> (losses, state): three steps on the same three batches."""
  config, targets, batches = tiny_run

  @functools.cache
  def run(data_axis, model_axis, dtype="float32"):
    mesh = _mesh(data_axis, model_axis)
    c = config.copy_and_resolve_references()
    c.dtype = dtype
    step, state = _train_step(c, targets, mesh)
    with jax.set_mesh(mesh):
      losses = []
      for batch in batches:
        state, metrics = step(state, pipeline.to_global(batch, mesh), jnp.float32(1.0))
        losses.append(float(metrics["loss/total"]))
    return losses, state

  return run


def _path(keys):
  return "/".join(str(k.key) for k in keys if isinstance(k, jax.tree_util.DictKey))


@pytest.mark.parametrize("shape", [(8, 1), (4, 2)])
def test_meshes_give_the_single_device_loss_trajectory(train, shape):
  single, _ = train(1, 1)
  losses, state = train(*shape)
  np.testing.assert_allclose(losses, single, rtol=1e-5)
  assert losses[-1] != losses[0]
  if shape[1] == 1:
    return
  params = jax.tree_util.tree_leaves_with_path(state["model"])
  sharded = {_path(k) for k, x in params if "model" in jax.tree.leaves(tuple(x.sharding.spec))}
  for name in ("backbone/conv1/kernel", "projection/kernel", "to_q/kernel", "to_v/kernel"):
    assert any(name in p for p in sharded), name
  conv1 = next(x for k, x in params if _path(k).endswith("backbone/conv1/kernel"))
  assert conv1.addressable_shards[0].data.shape[-1] == conv1.shape[-1] // 2


def _collectives_in_loops(hlo):
  """Names of computations that run inside a while loop (directly or through calls) and hold
  a collective."""
  bodies = dict(re.findall(r"^(?:ENTRY )?(%\S+) .*?\{\n(.*?)\n\}", hlo, re.M | re.S))
  callees = {
    name: set(re.findall(r"(?:body|condition|calls|to_apply)=(%[\w.\-]+)", text))
    for name, text in bodies.items()
  }
  pending = {b for text in bodies.values() for b in re.findall(r"body=(%[\w.\-]+)", text)}
  inside = set()
  while pending:
    name = pending.pop()
    if name not in inside:
      inside.add(name)
      pending |= callees.get(name, set())
  collective = re.compile(
    r"\b(all-reduce|all-gather|all-to-all|reduce-scatter|collective-permute)\("
  )
  return sorted(name for name in inside if collective.search(bodies.get(name, "")))


def test_no_collective_runs_inside_a_time_loop(tiny_run):
  # A collective per LSTM time step is slow everywhere, and on fake CPU devices two such loops
  # running at once deadlocked the 4×2 step (each device waiting in a different collective).
  config, targets, batches = tiny_run
  mesh = _mesh(4, 2)
  step, state = _train_step(config, targets, mesh)
  with jax.set_mesh(mesh):
    batch = pipeline.to_global(batches[0], mesh)
    hlo = step.lower(state, batch, jnp.float32(1.0)).compile().as_text()
  assert " while(" in hlo and "all-reduce(" in hlo  # the LSTMs' loops and the gradient sums
  assert _collectives_in_loops(hlo) == []


def test_bfloat16_computes_in_bf16_and_keeps_float32_state(train):
  fp32, _ = train(1, 1)
  bf16, state = train(1, 1, "bfloat16")
  np.testing.assert_allclose(bf16, fp32, rtol=3e-2)
  assert bf16 != fp32  # the step did run in bf16
  floats = {x.dtype for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)}
  assert floats == {jnp.dtype(jnp.float32)}  # parameters, batch statistics, Adam moments


def _train_losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return [(r["step"], r["train/loss/total"]) for r in rows if "train/loss/total" in r]


def test_non_finite_loss_stops_naming_the_step_and_keeps_checkpoints(
  small_data_dir, tmp_path, monkeypatch
):
  to_global, train_batches = pipeline.to_global, []

  def poison_fifth_training_batch(batch, mesh):
    if "er_emotion" in batch:  # a training batch (evaluation passes model inputs only)
      train_batches.append(batch)
      if len(train_batches) == 5:
        batch = batch | {"eye": np.full_like(batch["eye"], np.nan)}
    return to_global(batch, mesh)

  monkeypatch.setattr(pipeline, "to_global", poison_fifth_training_batch)
  with pytest.raises(runs_lib.NonFiniteError, match="Non-finite loss and gradients at step 5"):
    trainer.train_and_evaluate(tiny_run_config(small_data_dir), str(tmp_path))
  latest = ocp.CheckpointManager(tmp_path / "checkpoints" / "fold1_seed0" / "latest")
  assert latest.all_steps() == [2, 4]
  assert [s for s, _ in _train_losses(tmp_path)] == [2, 4]
  assert not (tmp_path / "results.json").exists()


def test_unreadable_latest_checkpoint_is_skipped_with_a_warning(small_data_dir, tmp_path, caplog):
  config = tiny_run_config(small_data_dir)
  trainer.train_and_evaluate(config, str(tmp_path))
  results, losses = (tmp_path / "results.json").read_text(), _train_losses(tmp_path)
  (tmp_path / "runs" / "fold1_seed0.json").unlink()  # the run must train again
  newest = tmp_path / "checkpoints" / "fold1_seed0" / "latest" / "6"
  for path in newest.rglob("*"):
    if path.is_file():
      path.write_bytes(b"half-written")
  with caplog.at_level(logging.WARNING):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert "Checkpoint 6" in caplog.text and "unreadable" in caplog.text
  moved = list((tmp_path / "checkpoints" / "fold1_seed0" / "unreadable").iterdir())
  assert [p.name.split("-")[:2] for p in moved] == [["latest", "6"]]  # moved aside, not deleted
  assert (moved[0] / "state").is_dir()
  assert _train_losses(tmp_path) == losses
  assert (tmp_path / "results.json").read_text() == results


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_together(small_data_dir, tmp_path):
  flags = os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=2")
  env = os.environ | {"XLA_FLAGS": flags}  # two processes of two devices: a 4-device mesh
  address = f"localhost:{_free_port()}"
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "emer_jax.main",
        "--config=configs/quickstart.py",
        f"--workdir={tmp_path}",
        f"--config.data_dir={small_data_dir}",
        "--config.total_steps=4",
        "--config.log_every_steps=2",
        "--config.checkpoint_every_steps=2",
        "--config.eval_every_steps=2",
        *TINY,
        f"--coordinator_address={address}",
        "--num_processes=2",
        f"--process_id={i}",
        "--verbosity=0",  # logs "Process i of 2"
      ],
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs, strict=True):
    assert p.returncode == 0, out
  assert (
    "Process 1 of 2" in outs[1] and "wrote results:" in outs[0] and "wrote results:" not in outs[1]
  )
  results = json.load(open(tmp_path / "results.json"))
  assert results["runs"][0]["num_train"] > 0
  assert [s for s, _ in _train_losses(tmp_path)] == [2, 4]
  assert len(open(tmp_path / "metrics.jsonl").readlines()) == 4  # 2 train + 2 val, one writer


def test_benchmark_prints_one_json_line(small_data_dir):
  overrides = [
    f"--config.data_dir={small_data_dir}",
    "--config.benchmark.warmup_steps=1",
    "--config.benchmark.steps=2",
    "--config.benchmark.input_batches=2",
    "--config.input.num_threads=1",
    "--config.mesh.model=2",
    "--config.benchmark.parallel_runs=(2,)",
    "--config.steps_per_call=2",
    "--config.benchmark.end_to_end_steps=2",
    "--config.benchmark.sweep=(1e-4,)",  # the config's: the end-to-end run's compiled steps
    "--config.benchmark.sweep_parallel_runs=(1,)",
    *TINY,
  ]
  proc = subprocess.run(
    [sys.executable, "-m", "emer_jax.benchmark", "--config=configs/benchmark.py", *overrides],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    check=True,
  )
  (line,) = proc.stdout.strip().splitlines()
  report = json.loads(line)
  from emer_jax.benchmark import table

  assert proc.stderr.rstrip().endswith(table(report))  # the same numbers, for a person
  for key in ("train_samples_per_s", "eval_samples_per_s", "step_ms", "compile_s"):
    assert report[key] > 0, key
  assert report["input_samples_per_s"] > 0
  assert report["end_to_end"]["runs"] == 1 and report["end_to_end_samples_per_s"] > 0
  assert "peak_memory_bytes" in report  # None where the backend has no memory statistics
  assert report["device_kind"] == "cpu" and report["device_count"] == 8
  assert report["mesh"] == {"data": 4, "model": 2}
  assert report["config"]["batch_size"] == 16
  assert report["flops_per_sample"] > 1e8  # the 8 frames of 112×112 through the ResNet alone
  assert report["mfu"] is None  # no peak FLOP/s for a CPU
  (together,) = report["parallel_runs"]
  assert together["parallel_runs"] == 2 and together["devices"] == 2
  assert together["samples_per_s"] > 0 and together["steps_per_call"] == 2
  (swept,) = report["sweep"]
  assert swept["parallel_runs"] == 1 and swept["runs"] == 1 and swept["samples_per_s"] > 0


def test_benchmark_table_lines():
  from emer_jax.benchmark import table

  report = {
    "device_count": 8,
    "device_kind": "cpu",
    "mesh": {"data": 4, "model": 2},
    "num_params": 12249850,
    "step_ms": 812.25,
    "train_samples_per_s": 19.7,
    "eval_samples_per_s": 60.0,
    "end_to_end_samples_per_s": None,
    "input_samples_per_s": 250.0,
    "compile_s": 31.0,
    "flops_per_sample": 2.5e9,
    "mfu": None,
    "peak_memory_bytes": None,
    "parallel_runs": [{"parallel_runs": 2, "samples_per_s": 30.0, "step_ms": 1066.0}],
    "sweep": [{"parallel_runs": 0, "runs": 45, "samples_per_s": 912.5, "wall_s": 789.0}],
  }
  lines = table(report).splitlines()
  assert lines[0] == "device                8 × cpu (mesh data 4 × model 2)"
  assert "train step            812.2 ms" in lines
  assert "end-to-end samples/s  –" in lines
  assert "GFLOP per sample      2.5" in lines
  assert lines[-2] == "2 runs together       30.0 samples/s, 1,066.0 ms a step"
  assert lines[-1] == "sweep, all at once    45 runs: 912.5 samples/s, 789.0 s"
  assert all(len(line) < 80 for line in lines)


def test_peak_flops_by_device_kind_and_dtype():
  from emer_jax.benchmark import peak_flops

  assert peak_flops("NVIDIA H200", "bfloat16") == 989e12
  assert peak_flops("NVIDIA H100 80GB HBM3", "float32") == 494e12  # TF32
  assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
  assert peak_flops("NVIDIA A100-SXM4-80GB", "float32") == 156e12
  assert peak_flops("NVIDIA L4", "bfloat16") == 121e12
  assert peak_flops("TPU v5 lite", "float32") == peak_flops("TPU v5 lite", "bfloat16") == 197e12
  assert peak_flops("TPU v5", "bfloat16") == 459e12
  assert peak_flops("cpu", "float32") is None
