"""Measures training and evaluation speed, FLOPs and MFU, compile time, memory and input throughput.

  python -m emer_jax.benchmark --config=configs/benchmark.py [--config.batch_size=64]
      [--config.dtype=bfloat16] [--config.model.variant=model_D]
      [--config.benchmark.parallel_runs='(1,2,4,8)']

Prints a table on stderr and one JSON line on stdout. Steps run on synthetic batches of the configured shapes placed on the
mesh, so the model's speed is measured apart from the input pipeline, which is timed alone.
`end_to_end_samples_per_s` times a real protocol run of the config (`folds` × `seeds`,
`benchmark.end_to_end_steps` steps each) through the trainer, from opening the data to the
reports. `flops_per_sample` comes from XLA's cost analysis of the compiled train step, `mfu` from it and
the device's peak FLOP/s (`PEAK_FLOPS`; null where unknown, e.g. on a CPU). With
`benchmark.parallel_runs`, R runs train together (`train.multi_run`) on data sampled on the
devices, `steps_per_call` steps per call (0: 1 on a CPU, 8 elsewhere), for each R listed.
With `benchmark.sweep` (learning rates), a sweep of them over the config's folds × seeds is
timed end to end as `end_to_end` is, once per `benchmark.sweep_parallel_runs` value, e.g. 3
learning rates × 5 folds × 3 seeds = 45 runs with parallel_runs 1, 5, 15 and 45.
"""

import contextlib
import json
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx
from ml_collections import config_flags

from emer_jax import cli, config_check, logs
from emer_jax.data import on_device, pipeline
from emer_jax.data.source import open_source
from emer_jax.protocols import TARGETS
from emer_jax.train import multi_run, steps, trainer
from emer_jax.train import state as state_lib

FLAGS = flags.FLAGS

# Dense peak FLOP/s per chip, by `device_kind`, for the dtype a step computes in. On these GPUs
# JAX computes float32 products in TF32 by default, and on TPUs in bfloat16 passes, so float32
# takes the TF32 or bfloat16 figure. Vendors' figures without sparsity:
# - H100 SXM / PCIe / NVL, H200 SXM / NVL: NVIDIA H100 and H200 datasheets (nvidia.com/h100,
#   nvidia.com/h200): BF16 1,979 / 1,513 / 1,671 TFLOPS and TF32 989 / 756 / 835 with sparsity
#   (H200: as H100 SXM and NVL), halved here.
# - A100 (SXM and PCIe, 40 and 80 GB): NVIDIA A100 datasheet: BF16 312, TF32 156 TFLOPS.
# - L4: NVIDIA L4 datasheet: BF16 242, TF32 120 TFLOPS with sparsity, halved.
# - TPU v4 275, v5e 197, v5p 459, v6e 918 TFLOPS bf16 per chip: Cloud TPU system architecture
#   pages (cloud.google.com/tpu/docs/v4, v5e, v5p, v6e).
_GPU_PEAKS = (  # (substring of device_kind, bfloat16, float32); the first match wins
  ("H100 PCIe", 756e12, 378e12),
  ("H100 NVL", 835e12, 417e12),
  ("H100", 989e12, 494e12),
  ("H200 NVL", 835e12, 417e12),
  ("H200", 989e12, 494e12),
  ("A100", 312e12, 156e12),
  ("L4", 121e12, 60e12),
)
_TPU_PEAKS = {"TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5": 459e12, "TPU v6 lite": 918e12}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Dense peak FLOP/s of one device of `device_kind` computing in `dtype`; None if unknown."""
  if device_kind in _TPU_PEAKS:
    return _TPU_PEAKS[device_kind]
  for name, bf16, fp32 in _GPU_PEAKS:
    if device_kind.startswith("NVIDIA") and name in device_kind:
      return bf16 if dtype == "bfloat16" else fp32
  return None


def _mfu(flops_per_sample, samples_per_s, config, num_devices):
  peak = peak_flops(jax.devices()[0].device_kind, config.dtype)
  if peak is None or flops_per_sample is None:
    return None
  return flops_per_sample * samples_per_s / (peak * num_devices)


def _flops(compiled, num_devices: int) -> float | None:
  """FLOPs of one call of a compiled SPMD program (XLA counts one device's share)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, list | tuple):  # older jax: one dict per program
    cost = cost[0] if cost else None
  return cost["flops"] * num_devices if cost and "flops" in cost else None


def synthetic_batch(config, targets, batch_size: int, seed: int = 0) -> dict:
  """Random inputs with the shapes the input pipeline produces."""
  rng = np.random.default_rng(seed)
  size = config.model.fixation_encoder.map_size
  batch = {
    "face": rng.integers(0, 256, (batch_size, config.input.num_frames, 112, 112, 3), np.uint8),
    "eye": rng.normal(size=(batch_size, config.input.num_eye_rows, 39)).astype(np.float32),
    "gaze": rng.normal(size=(batch_size, config.input.num_eye_rows, 2)).astype(np.float32),
    "fixation_map": rng.uniform(size=(batch_size, size, size, 1)).astype(np.float32),
  }
  for name in targets:
    t = TARGETS[name]
    batch[name] = (
      rng.integers(0, t.num_outputs, batch_size).astype(np.int32)
      if t.kind == "classification"
      else rng.uniform(-1, 1, batch_size).astype(np.float32)
    )
  return batch


def _time_steps(fn, count: int) -> list[float]:
  times = []
  for _ in range(count):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return times


def _peak_memory():
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def _input_throughput(config, targets) -> float | None:
  if not config.benchmark.input_batches:
    return None
  logs.phase(f"timing {config.benchmark.input_batches} input batches")
  data = open_source(config.dataset, config.data_dir, cache=config.input.cache)
  # Timed from the iterator's creation: timing only after a first batch would count batches
  # already waiting in the prefetch buffer as free. So this is a lower bound, start-up included.
  # Speed does not depend on the statistics' values: one sample's, so that the cache stays cold.
  data = pipeline.with_normalisation(data, [0], config)
  start = time.perf_counter()
  ds = iter(pipeline.train_dataset(data, np.arange(len(data)), config, targets, seed=0))
  for _ in range(config.benchmark.input_batches):
    next(ds)
  return config.benchmark.input_batches * config.batch_size / (time.perf_counter() - start)


def _parallel_runs(config, source, arrays, heads, num_runs: int, flops_per_sample) -> dict:
  """`num_runs` runs of batch `batch_size` trained together on data sampled on the devices."""
  bench, k = config.benchmark, multi_run.steps_per_call(config)
  targets = tuple(heads)
  mesh = multi_run.run_mesh(num_runs)
  _, options = on_device.sampling(source, config, targets)
  everything = [np.arange(len(source))] * num_runs
  seeds = np.arange(num_runs)
  runs = multi_run.runs_inputs(config, source, everything, seeds, [10**9] * num_runs, targets, mesh)
  graphdef, state = multi_run.init_states(config, heads, seeds, mesh)
  train = multi_run.make_train_steps(graphdef, config, mesh, steps_per_call=k, **options)
  data = on_device.put(arrays, multi_run.replicated(mesh))
  start = time.perf_counter()
  compiled = train.lower(state, data, runs, jnp.int32(0)).compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state, "step": 0}

  def one_call():
    holder["state"], metrics = compiled(holder["state"], data, runs, jnp.int32(holder["step"]))
    holder["step"] += k
    return metrics["loss/total"]

  _time_steps(one_call, max(-(-bench.warmup_steps // k), 1))
  call_s = statistics.median(_time_steps(one_call, max(-(-bench.steps // k), 1)))
  samples_per_s = num_runs * config.batch_size * k / call_s
  return {
    "parallel_runs": num_runs,
    "devices": mesh.size,
    "steps_per_call": k,
    "samples_per_s": samples_per_s,
    "step_ms": 1000 * call_s / k,
    "compile_s": compile_s,
    "data_bytes": on_device.nbytes(arrays),
    # a run's FLOPs per sample are the single-run step's: vmap adds none
    "mfu": _mfu(flops_per_sample, samples_per_s, config, mesh.size),
  }


def _sweep(config, heads, flops_per_sample) -> list[dict]:
  if not config.benchmark.parallel_runs:
    return []
  source = open_source(config.dataset, config.data_dir, cache=config.input.cache)
  source = pipeline.with_normalisation(source, np.arange(len(source)), config)
  sizes = dict(num_frames=config.input.num_frames, num_eye_rows=config.input.num_eye_rows)
  arrays = on_device.decode(source, tuple(heads), **sizes)
  return [
    _parallel_runs(config, source, arrays, heads, runs, flops_per_sample)
    for runs in config.benchmark.parallel_runs
  ]


def _end_to_end(config, points=None, parallel_runs=None) -> dict | None:
  """Training samples per second of `trainer.train_and_evaluate` over the config's folds ×
  seeds (× a sweep's `points`), `benchmark.end_to_end_steps` steps each: what a user's protocol
  run gets, with opening the data, compiling, validation, checkpoints, testing and reports in
  the wall time."""
  steps_each = config.benchmark.end_to_end_steps
  if not steps_each:
    return None
  run_config = config.copy_and_resolve_references()
  with run_config.unlocked():
    del run_config.benchmark
    run_config.total_steps = steps_each
    if parallel_runs is not None:
      run_config.parallel_runs = parallel_runs
  num_runs = len(config.folds) * len(config.seeds) * len(points or [None])
  what = "a sweep" if points else "a protocol run"
  logs.phase(f"timing {what}: {num_runs} run(s) × {steps_each} steps, end to end")
  # The run's "wrote …" lines go to stderr: stdout holds the benchmark's one JSON line.
  with (
    tempfile.TemporaryDirectory(prefix="emer_benchmark_") as workdir,
    contextlib.redirect_stdout(sys.stderr),
  ):
    start = time.perf_counter()
    trainer.train_and_evaluate(run_config, workdir, points=points)
    wall_s = time.perf_counter() - start
  samples = num_runs * steps_each * config.batch_size
  return {"samples_per_s": samples / wall_s, "wall_s": wall_s, "runs": num_runs}


def _sweep_end_to_end(config) -> list[dict]:
  """`_end_to_end` of a sweep of `benchmark.sweep` learning rates, per `sweep_parallel_runs`."""
  rates = tuple(config.benchmark.get("sweep", ()))
  if not rates:
    return []
  points = [{"learning_rate": float(lr)} for lr in rates]
  return [
    {"parallel_runs": size, **_end_to_end(config, points, size)}
    for size in config.benchmark.get("sweep_parallel_runs", ()) or (0,)
  ]


def run(config) -> dict:
  config_check.check(config)
  mesh = state_lib.make_mesh(config)
  targets = state_lib.run_targets(config)
  dtype = jnp.dtype(config.dtype)
  bench = config.benchmark
  heads = {t: TARGETS[t].num_outputs for t in targets}
  graphdef, _, state = state_lib.init_state(config, heads, seed=0, total_steps=1000, mesh=mesh)
  num_params = sum(
    x.size for x in jax.tree.leaves(nnx.state(nnx.merge(graphdef, state)["model"], nnx.Param))
  )
  with jax.set_mesh(mesh):
    train_step = steps.make_train_step(
      graphdef, dtype=dtype, alpha=config.loss.alpha, beta=config.loss.beta, head_weights={}
    )
    eval_step = steps.make_eval_step(graphdef, dtype=dtype)
    train_batch = pipeline.to_global(synthetic_batch(config, targets, config.batch_size), mesh)
    eval_batch = pipeline.to_global(synthetic_batch(config, targets, config.eval_batch_size), mesh)
    lam = jnp.float32(1.0)

    logs.phase("compiling the train step")
    start = time.perf_counter()
    compiled = train_step.lower(state, train_batch, lam).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def one_train_step():
      holder["state"], metrics = compiled(holder["state"], train_batch, lam)
      return metrics["loss/total"]

    logs.phase(f"timing {bench.steps} train and eval steps")
    _time_steps(one_train_step, bench.warmup_steps)
    train_times = _time_steps(one_train_step, bench.steps)
    _time_steps(lambda: eval_step(holder["state"], eval_batch), bench.warmup_steps)
    eval_times = _time_steps(lambda: eval_step(holder["state"], eval_batch), bench.steps)
  step_s = statistics.median(train_times)
  end_to_end = _end_to_end(config)
  flops = _flops(compiled, mesh.size)
  flops_per_sample = flops / config.batch_size if flops else None
  return {
    "train_samples_per_s": config.batch_size / step_s,
    "end_to_end_samples_per_s": end_to_end and end_to_end["samples_per_s"],
    "end_to_end": end_to_end,
    "flops_per_sample": flops_per_sample,
    "mfu": _mfu(flops_per_sample, config.batch_size / step_s, config, mesh.size),
    "parallel_runs": _sweep(config, heads, flops_per_sample),
    "sweep": _sweep_end_to_end(config),
    "eval_samples_per_s": config.eval_batch_size / statistics.median(eval_times),
    "step_ms": 1000 * step_s,
    "compile_s": compile_s,
    "peak_memory_bytes": _peak_memory(),
    "input_samples_per_s": _input_throughput(config, targets),
    "device_kind": jax.devices()[0].device_kind,
    "device_count": jax.device_count(),
    "process_count": jax.process_count(),
    "mesh": dict(mesh.shape),
    "num_params": num_params,
    "config": json.loads(config.to_json_best_effort()),
  }


def _number(value, unit: str = "", digits: int = 1) -> str:
  return "–" if value is None else f"{value:,.{digits}f}{unit}"


def table(report: dict) -> str:
  """The report's headline numbers as aligned lines, for a person (the JSON line is for tools)."""
  memory = report["peak_memory_bytes"]
  mesh = " × ".join(f"{k} {v}" for k, v in report["mesh"].items())
  rows = [
    ("device", f"{report['device_count']} × {report['device_kind']} (mesh {mesh})"),
    ("parameters", f"{report['num_params']:,}"),
    ("train step", _number(report["step_ms"], " ms")),
    ("train samples/s", _number(report["train_samples_per_s"])),
    ("eval samples/s", _number(report["eval_samples_per_s"])),
    ("end-to-end samples/s", _number(report["end_to_end_samples_per_s"])),
    ("input samples/s", _number(report["input_samples_per_s"])),
    ("compile", _number(report["compile_s"], " s")),
    ("GFLOP per sample", _number(report["flops_per_sample"] and report["flops_per_sample"] / 1e9)),
    ("MFU", _number(report["mfu"] and 100 * report["mfu"], " %")),
    ("peak memory", _number(memory and memory / 2**30, " GiB", 2)),
  ]
  for r in report["parallel_runs"]:
    rows.append(
      (
        f"{r['parallel_runs']} runs together",
        f"{_number(r['samples_per_s'])} samples/s, {_number(r['step_ms'], ' ms')} a step",
      )
    )
  for r in report.get("sweep", []):
    rows.append(
      (
        f"sweep, {r['parallel_runs'] or 'all'} at once",
        f"{r['runs']} runs: {_number(r['samples_per_s'])} samples/s, {_number(r['wall_s'], ' s')}",
      )
    )
  width = max(len(name) for name, _ in rows)
  return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv):
  del argv
  report = run(FLAGS.config)
  print(table(report), file=sys.stderr, flush=True)
  print(json.dumps(report))


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  config_flags.DEFINE_config_file("config", "configs/benchmark.py", "Benchmark config file.")
  cli.run(main)
