"""The host engine: one run at a time, its batches from a grain pipeline on the host.

A run goes through five stages: open or resume (`_open_or_resume`), fit (`_fit`), select the
validation-best weights (`_select`), test and write (`run_eval`). Used where the data stays on the
host (`state.resolve_placement`): several processes, a CPU, data too large for the devices.
"""

import time

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from emer_jax import logs
from emer_jax.data import pipeline
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.protocols import head_sizes
from emer_jax.train import ctrl_c, optim, run_checkpoints, run_eval, steps
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib
from emer_jax.train import workdir as workdir_lib
from emer_jax.train.writers import MetricWriter


def train_run(config, workdir, data, mesh, *, fold: int, seed: int) -> dict:
  done = workdir_lib.finished_run(config, workdir, fold, seed)
  if done is not None:
    return done
  targets = state_lib.run_targets(config)
  run = runs_lib.new_run(config, workdir, data, fold, seed)
  logs.phase(f"{run.name}: building the model")
  graphdef, abstract, state = state_lib.init_state(
    config, head_sizes(targets), seed, run.cadence.total_steps, mesh
  )
  managers = run_checkpoints.Managers(
    workdir_lib.checkpoints_dir(workdir, run.name), config.keep_checkpoints
  )
  with jax.set_mesh(mesh), managers as (run.latest, run.best), ctrl_c.BetweenSteps() as interrupt:
    train_iter = _train_data(config, run.data, run.split, targets, seed)
    state = _open_or_resume(config, run, graphdef, abstract, state, train_iter)
    eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
    run.writer = MetricWriter(workdir, run.name, {"fold": fold, "seed": seed}, run.step)

    def validate(s):
      """Validation metrics, task losses and selection score of state `s`."""
      outputs = run_eval.predict(eval_step, s, run.data, run.split.val, config, targets, mesh)
      return run_eval.validation(config, run.data, run.split.val, targets, outputs)

    try:
      state = _fit(config, run, graphdef, state, train_iter, mesh, validate, interrupt)
      state = _select(run, state, abstract)
      desc = f"{run.name}: evaluating {len(run.split.test)} test samples"
      outputs, test = run_eval.outputs_and_metrics(
        eval_step, state, run.data, run.split.test, config, targets, mesh, desc
      )
      result = runs_lib.run_result(config, run, test)
      run_eval.write_run(workdir, result, run.data, run.split.test, targets, outputs)
      run.writer.write_test(result["selected_step"], metrics_lib.flatten_scalars(test, "test/"))
    finally:
      run.writer.close()
  return result


def _train_data(config, data, split, targets, seed):
  """The run's training batches: the one place its input pipeline is created."""
  return iter(pipeline.train_dataset(data, split.train, config, targets, seed=seed))


def _open_or_resume(config, run, graphdef, abstract, state, train_iter):
  """The newest readable `latest` checkpoint's state, else `init_checkpoint`'s or `state`; sets
  the run's step and the best step and score recorded on disk."""
  items = {"data": grain.checkpoint.CheckpointRestore(train_iter)}
  run.step, restored = run_checkpoints.restore_latest(run.latest, abstract, items, "host")
  run.best_step, run.best_score = run_checkpoints.recorded_best(run.best)
  if restored is not None:
    logging.info("Resuming %s from step %d.", run.name, run.step)
    return restored
  if config.init_checkpoint:
    return state_lib.with_init_checkpoint(config, graphdef, state)
  return state


def _fit(config, run, graphdef, state, train_iter, mesh, validate, interrupt):
  """Trains the run from its step to its last; returns the state, the run's best step set.

  `validate(state)` gives (metrics, losses, score). After a step in which Ctrl-C was pressed
  (`interrupt`), raises `ctrl_c.Interrupted`."""
  total_steps = run.cadence.total_steps
  train_step = steps.make_train_step(
    graphdef,
    dtype=jnp.dtype(config.dtype),
    alpha=config.loss.alpha,
    beta=config.loss.beta,
    head_weights=dict(config.loss.head_weights),
  )
  schedule = optim.learning_rate_schedule(config, total_steps)
  if run.training:
    logs.phase(f"{run.name}: compiling the train step (the bar starts after its first step)")
  progress, pending, ticks = None, [], {}
  while run.training:
    batch = pipeline.to_global(next(train_iter), mesh)
    lam = optim.grl_lambda(config.grl, run.step, total_steps)
    state, metrics = train_step(state, batch, lam)
    run.step += 1
    pending.append((run.step, metrics["finite/loss"], metrics["finite/grads"]))
    if progress is None:  # throughput and the bar's ETA start after the compiling step
      jax.block_until_ready(metrics)
      ticks[run.name] = (time.perf_counter(), run.step)
      progress = logs.progress(total_steps, f"{run.name}: training", initial=run.step)
    else:
      progress.update(1)
    due = run.cadence(run.step)
    if "log" in due:
      runs_lib.check_finite(jax.device_get(pending))
      pending = []
      logged = runs_lib.train_logged(jax.device_get(metrics))
      logged |= {"train/learning_rate": schedule(run.step - 1), "train/grl_lambda": lam}
      run.writer.write(run.step, logged | runs_lib.perf(config, run, ticks, time.perf_counter()))
      progress.set_postfix(loss=f"{float(logged['train/loss/total']):.4f}")
    if "eval" in due:
      val, val_losses, score = validate(state)
      run.writer.write(run.step, metrics_lib.flatten_scalars(val, "val/") | val_losses)
      if run.best_score is None or score > run.best_score:
        run_checkpoints.save_best(run.best, run.step, state, score)
        run.best_step, run.best_score = run.step, score
    if "checkpoint" in due:
      runs_lib.check_finite(jax.device_get(pending))
      pending = []
      run.latest.save(
        run.step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=grain.checkpoint.CheckpointSave(train_iter),
        ),
      )
    if interrupt.pressed:
      progress.close()
      run.latest.wait_until_finished()
      raise ctrl_c.Interrupted(run.name, run.step, run.latest.latest_step(), total_steps)
  interrupt.restore()
  if progress is not None:
    progress.close()
  return state


def _select(run, state, abstract):
  """The state with the validation-best weights (the last state when nothing was selected)."""
  if run.best_step is None:
    return state
  model = run_checkpoints.restore_best_model(run.best, run.best_step, abstract)
  return nnx.State({"model": model, "optimizer": state["optimizer"]})
