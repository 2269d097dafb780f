"""The fit/evaluate entry: one run per (seed, fold[, sweep point]); select on validation; touch
test once.

`train_and_evaluate` checks the config (and a sweep's points), holds the workdir, opens the
data, chooses the engine for where the data is placed (`device_engine` with the data on the
devices, `host_engine` otherwise), trains the runs in groups through the one run loop
(`run_loop`; a sweep through `selection`) and writes `results.json`. The workdir layout:
`emer_jax.workdir`.
"""

import os

import jax
from absl import logging
from jax.experimental import multihost_utils

from emer_jax import config_check, dataset_targets, paths
from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.train import device_engine, eval_mode, host_engine, run_eval, run_loop, selection
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib


def train_and_evaluate(config, workdir: str, *, restart: bool = False, points=None) -> dict:
  """Trains and tests one model per (seed, fold) and writes `results.json`; returns it.

  `points` (`emer_jax.sweep`) makes a sweep: every point trains per (seed, fold), and per test
  fold the point with the best mean validation score over seeds is tested (`selection`).
  With `config.mode == 'eval'` it trains nothing and writes to `workdir/eval/` (`eval_mode.evaluate`).
  `restart` moves an existing workdir's contents aside instead of refusing a changed config.
  """
  config_check.check(config)
  dataset_targets.resolve(config)
  configs = [config] if points is None else sweep_lib.check(config, points)
  points = None if points is None else sweep_lib.normalised(points)
  paths.check_run_paths(config, workdir)
  state_lib.check_init_checkpoint(config)
  workdir = os.path.abspath(workdir)
  if config.mode == "eval":
    paths.check_writable_dir(workdir_lib.eval_dir(workdir), "The eval folder")
    # Nothing to evaluate is an error before anything is created.
    found = eval_mode.sources(config, workdir, points)
    with workdir_lib.locked(workdir):
      return eval_mode.evaluate(config, workdir, found)
  with workdir_lib.locked(workdir):
    if restart and jax.process_index() == 0:
      aside = workdir_lib.move_aside(workdir)
      if aside:
        logging.warning("--restart: moved the workdir's previous contents to %s.", aside)
    if restart:
      multihost_utils.sync_global_devices("workdir moved aside")
    workdir_lib.check_same_config(workdir, config)
    workdir_lib.check_same_sweep(workdir, points)
    data, mesh = state_lib.open_data(config)
    placement, arrays = state_lib.resolve_placement(config, data)
    os.makedirs(workdir_lib.runs_dir(workdir), exist_ok=True)
    workdir_lib.write_config(workdir, config)
    num_points = None if points is None else len(points)
    if placement == "device":
      size, engine_for = device_engine.engines(config, data, arrays, num_points)
    else:
      size, engine_for = host_engine.engines(config, mesh)
    recorded = workdir_lib.read_config(workdir)
    if points is None:
      keys = runs_lib.run_keys(config)
      results = run_loop.train_runs(configs, workdir, data, size, engine_for, keys)
      return run_eval.write_results(config, workdir, [results[k] for k in keys], recorded)
    workdir_lib.write_sweep_points(workdir, points)
    runs, selected = selection.train_sweep(configs, points, workdir, data, size, engine_for)
    sweep = {"points": points, "selected": selected}
    return run_eval.write_results(config, workdir, runs, recorded, sweep)
