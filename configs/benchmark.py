"""Benchmark settings: the reference EMERT at the reference's shapes (batch 16, 8 frames of
112×112, 32×39 eye rows, 32×2 gaze rows, fp32). `python -m emer_jax.benchmark --config=...`"""

import ml_collections

from emer_jax.config import base_config


def get_config(variant="reference"):
  c = base_config(variant)
  c.dataset = "emer/synthetic_small"  # feeds the input-pipeline measurement
  c.protocol = "er7"
  c.batch_size = 16
  c.eval_batch_size = 16
  c.unlock()
  c.benchmark = ml_collections.ConfigDict()
  c.benchmark.warmup_steps = 3
  c.benchmark.steps = 20
  c.benchmark.input_batches = 20  # 0 skips the input-pipeline measurement
  # A real protocol run (`folds` × `seeds`, this many steps each, data, validation, checkpoints
  # and reports included) timed as a user would; 0 skips it.
  c.benchmark.end_to_end_steps = 20
  c.folds = (1,)
  # Runs trained together on data sampled on the devices, e.g. (1, 2, 4, 8); () skips it.
  c.benchmark.parallel_runs = ()
  # A sweep of these learning rates over folds × seeds timed end to end (end_to_end_steps steps
  # a run), once per sweep_parallel_runs value (0: all runs of a program together); () skips it.
  c.benchmark.sweep = ()
  c.benchmark.sweep_parallel_runs = ()
  c.lock()
  return c
