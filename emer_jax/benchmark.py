"""Measures training and evaluation speed, compile time, memory and input throughput.

  python -m emer_jax.benchmark --config=configs/benchmark.py [--config.batch_size=64]
      [--config.dtype=bfloat16] [--config.model.variant=model_D]

Prints one JSON line. Steps run on synthetic batches of the configured shapes placed on the
mesh, so the model's speed is measured apart from the input pipeline, which is timed alone.
"""

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx
from ml_collections import config_flags

from emer_jax import cli, config_check, logs
from emer_jax.data import pipeline
from emer_jax.data.source import open_source
from emer_jax.protocols import TARGETS
from emer_jax.train import steps, trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/benchmark.py", "Benchmark config file.")


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


def run(config) -> dict:
  config_check.check(config)
  mesh = trainer.make_mesh(config)
  targets = trainer.run_targets(config)
  dtype = jnp.dtype(config.dtype)
  bench = config.benchmark
  heads = {t: TARGETS[t].num_outputs for t in targets}
  graphdef, _, state = trainer.init_state(config, heads, seed=0, total_steps=1000, mesh=mesh)
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
  return {
    "train_samples_per_s": config.batch_size / step_s,
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


def main(argv):
  del argv
  print(json.dumps(run(FLAGS.config)))


if __name__ == "__main__":
  cli.run(main)
