"""The one run loop: every run's bookkeeping, whichever engine trains it.

`train_runs` takes a config's runs (`runs.run_keys`) in groups: a finished run is read back,
the others are opened or resumed by an engine, fitted (`fit`), tested and written. What differs
between placements is the engine that advances a group's runs by k steps and evaluates them:
`host_engine` (a group of one, batches from a grain pipeline) or `device_engine` (stacked runs,
the data on the devices, `lax.scan`). An engine has

  steps_per_call             the most steps one `advance` takes
  compiling                  the phase line shown before its first call
  advance(k)                 per run: (finite flags of each of the k steps, a function giving
                             the last step's metrics)
  validate()                 each run's outputs on its validation part, in that part's order
  save_best({r: score})      saves (and keeps) the current weights of the runs that improved
  save_latest(r)             saves run r's full state at its step
  test()                     each run's outputs on its test part, with its validation-best weights
"""

import contextlib
import time

import jax

from emer_jax import logs
from emer_jax import workdir as workdir_lib
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.train import ctrl_c, multi_run, run_checkpoints, run_eval
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib
from emer_jax.train.writers import MetricWriter


def train_runs(
  configs: list, workdir, data, size: int, engine_for, keys, *, test=True, points=None
) -> dict:
  """{(fold, seed, point): result} of the runs `keys` (`runs.run_keys`; `configs[point or 0]`
  each run's config, `points` a sweep's values): a finished run's as recorded, the others
  trained in groups of at most `size` runs of one program (`multi_run.program_key`), and tested
  unless `test` is false (a sweep tests only the points it selects). `engine_for(runs, stack)`
  opens a group's engine (its contexts on `stack`), which opens or resumes the runs."""
  results, programs = {}, {}
  for key in keys:
    programs.setdefault(multi_run.program_key(configs[key[2] or 0]), []).append(key)
  for program in programs.values():
    for first in range(0, len(program), size):
      group = []
      for fold, seed, point in program[first : first + size]:
        config = configs[point or 0]
        done = workdir_lib.finished_run(config, workdir, fold, seed, point)
        if done is not None and (not test or "metrics" in done):
          results[(fold, seed, point)] = done
        else:
          values = None if point is None else points[point]
          group.append(runs_lib.new_run(config, workdir, data, fold, seed, point, values))
      if group:
        results |= _train_group(workdir, group, engine_for, test)
  return results


def _train_group(workdir, runs: list[runs_lib.Run], engine_for, test: bool) -> dict:
  """Opens or resumes, fits, tests and writes one group; returns {(fold, seed, point): result}."""
  with contextlib.ExitStack() as stack:
    for run in runs:
      run_dir = workdir_lib.checkpoints_dir(workdir, run.name)
      run.latest, run.best = stack.enter_context(
        run_checkpoints.Managers(run_dir, run.config.keep_checkpoints)
      )
    engine = engine_for(runs, stack)
    for run in runs:
      run.writer = MetricWriter(workdir, run.name, run.tags, resume_step=run.step)
      stack.callback(run.writer.close)
    fit(engine, runs, stack.enter_context(ctrl_c.BetweenSteps()))
    if not test:
      return {(run.fold, run.seed, run.point): _write_trained(workdir, run) for run in runs}
    return _test_and_write(workdir, runs, engine.test())


def fit(engine, runs: list[runs_lib.Run], interrupt) -> None:
  """Trains every run of the group to its last step.

  Each call advances the runs still training by k steps, k ending at the next step on which any
  of them logs, validates or checkpoints. After a call in which Ctrl-C was pressed (`interrupt`),
  waits for the checkpoints being written and raises `ctrl_c.Interrupted`.
  """
  names = ", ".join(run.name for run in runs)
  total = sum(run.cadence.total_steps for run in runs)
  if any(run.training for run in runs):
    logs.phase(f"{names}: {engine.compiling}")
  progress, ticks, pending = None, {}, [[] for _ in runs]
  try:
    while any(run.training for run in runs):
      training = [r for r, run in enumerate(runs) if run.training]
      k = min(
        [engine.steps_per_call]
        + [runs[r].cadence.next_due(runs[r].step) - runs[r].step for r in training]
      )
      done = sum(run.step for run in runs)
      stepped = engine.advance(k)
      if progress is None:  # throughput and the bar's ETA start after the compiling call
        jax.block_until_ready([finite for finite, _ in stepped])
        progress = logs.progress(total, f"{names}: training", initial=done)
      now = time.perf_counter()
      due = {}
      for r in training:
        run, (finite, last) = runs[r], stepped[r]
        pending[r] += [(run.step + j + 1, *ok) for j, ok in enumerate(finite)]
        run.step += k
        progress.update(k)
        ticks.setdefault(run.name, (now, run.step))
        due[r] = run.cadence(run.step)
        if due[r]:
          runs_lib.check_finite(jax.device_get(pending[r]), run.name if len(runs) > 1 else "")
          pending[r] = []
        if "log" in due[r]:
          logged = _log(run, jax.device_get(last()), ticks, time.perf_counter())
          if len(runs) == 1:
            progress.set_postfix(loss=f"{float(logged['train/loss/total']):.4f}")
      validating = [r for r, d in due.items() if "eval" in d]
      if validating:
        _validate(engine, runs, validating)
      for r, d in due.items():
        if "checkpoint" in d:
          engine.save_latest(r)
      if interrupt.pressed:
        progress.close()
        for run in runs:
          run.latest.wait_until_finished()
        saved = min(run.latest.latest_step() or 0 for run in runs)
        step = min(run.step for run in runs)
        raise ctrl_c.Interrupted(names, step, saved, max(run.cadence.total_steps for run in runs))
  finally:  # a stop (an error, Ctrl-C) leaves no bar drawn after its message
    if progress is not None:
      progress.close()
  interrupt.restore()


def _log(run: runs_lib.Run, metrics: dict, ticks: dict, now: float) -> dict:
  """Writes the run's metrics.jsonl line of its current step; returns it."""
  logged = runs_lib.train_logged(metrics)
  logged["train/learning_rate"] = metrics["learning_rate"]
  logged["train/grl_lambda"] = metrics["grl_lambda"]
  logged |= runs_lib.perf(run.config, run, ticks, now)
  run.writer.write(run.step, logged)
  return logged


def _validate(engine, runs, validating: list[int]) -> None:
  """Records the validation of the runs due; saves the weights of each run that improved."""
  outputs = engine.validate()
  improved = {}
  for r in validating:
    run = runs[r]
    targets = state_lib.run_targets(run.config)
    val, losses, score = run_eval.validation(
      run.config, run.data, run.split.val, targets, outputs[r]
    )
    run.writer.write(run.step, metrics_lib.flatten_scalars(val, "val/") | losses)
    if run.best_score is None or score > run.best_score:
      improved[r] = score
  if improved:
    engine.save_best(improved)
  for r, score in improved.items():
    runs[r].best_step, runs[r].best_score = runs[r].step, score


def _write_trained(workdir, run: runs_lib.Run) -> dict:
  """A sweep's run before its test: `runs/<run>.json` with its validation score (also
  TensorBoard's, beside the point's values)."""
  result = runs_lib.run_result(run)
  if run.best_score is not None:
    run.writer.write_hparams(run.values, {"sweep/val_score": run.best_score}, run.best_step)
  path = workdir_lib.run_json_path(workdir, run.fold, run.seed, run.point)
  workdir_lib.write_json(path, result, "the run's record")
  return result


def _test_and_write(workdir, runs, outputs) -> dict:
  """Each run's test metrics, predictions and `runs/<run>.json`; returns
  {(fold, seed, point): result}."""
  results = {}
  for run, out in zip(runs, outputs, strict=True):
    targets = state_lib.run_targets(run.config)
    test = metrics_lib.target_metrics(run_eval.labels_of(run.data, run.split.test, targets), out)
    result = runs_lib.run_result(run, test)
    run_eval.write_run(workdir, result, run.data, run.split.test, targets, out)
    run.writer.write_test(result["selected_step"], metrics_lib.flatten_scalars(test, "test/"))
    results[(run.fold, run.seed, run.point)] = result
  return results
