"""The device engine: runs trained together with the data on the devices (`input.placement`
resolved to 'device').

The runs of a config (`runs.run_keys`: folds × seeds) go in groups of at most
`parallel_runs` (0: all in one group). A group is one program (`multi_run`): its states stacked
on a leading run axis over a 'runs' mesh, each run with its own split, training statistics,
batches, schedules, validation selection and best weights (kept on the devices). A group goes
through the host engine's stages — open or resume, fit, select, test, write — and every
run writes what `host_engine.train_run` writes: its checkpoints, metrics.jsonl lines, TensorBoard
events, predictions, normalisation record and `runs/*.json`.

A run's `latest` checkpoint holds its own (unstacked) state and a `placement` record in place
of the grain iterator: its batches are keyed by (seed, step), so the step is all a resume
needs. Each call trains k ≤ `steps_per_call` steps, k ending at the next step on which any run
logs, validates or checkpoints (one compilation per distinct k).
"""

import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from emer_jax import logs
from emer_jax.data import on_device
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.protocols import head_sizes
from emer_jax.train import ctrl_c, multi_run, run_checkpoints, run_eval
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib
from emer_jax.train import workdir as workdir_lib
from emer_jax.train.writers import MetricWriter


def train_runs(config, workdir, data, arrays) -> list[dict]:
  """Every run's result, in `run_keys` order: a finished run's as recorded, the others trained
  group by group. `arrays` is the decoded dataset (`on_device.decode_for`)."""
  keys = runs_lib.run_keys(config)
  size = config.parallel_runs or len(keys)
  results, job = {}, _Job(config, arrays)
  for first in range(0, len(keys), size):
    group = []
    for fold, seed in keys[first : first + size]:
      done = workdir_lib.finished_run(config, workdir, fold, seed)
      if done is not None:
        results[(fold, seed)] = done
      else:
        group.append(runs_lib.new_run(config, workdir, data, fold, seed))
    if group:
      results |= _train_group(config, workdir, group, job)
  return [results[k] for k in keys]


class _Job:
  """What a job's groups share: the decoded dataset, put on each set of devices once, and the
  compiled steps, one per (devices, k) (every group builds the same model)."""

  def __init__(self, config, arrays):
    self.config, self.arrays, self.options = config, arrays, None
    self._placed, self._train, self._eval = {}, {}, {}

  def data(self, mesh):
    key = tuple(mesh.devices.flat)
    if key not in self._placed:
      self._placed[key] = on_device.put(self.arrays, multi_run.replicated(mesh))
    return self._placed[key]

  def train(self, graphdef, mesh, k: int):
    key = (tuple(mesh.devices.flat), k)
    if key not in self._train:
      self._train[key] = multi_run.make_train_steps(
        graphdef, self.config, mesh, steps_per_call=k, **self.options
      )
    return self._train[key]

  def evaluate(self, graphdef, mesh):
    key = tuple(mesh.devices.flat)
    if key not in self._eval:
      self._eval[key] = multi_run.make_eval_steps(
        graphdef, self.config, mesh, bgr=self.options["bgr"]
      )
    return self._eval[key]


def _train_group(config, workdir, runs: list[runs_lib.Run], job: _Job) -> dict:
  """Trains, selects, tests and writes one group; returns {(fold, seed): result}."""
  targets = state_lib.run_targets(config)
  mesh = multi_run.run_mesh(len(runs))
  data = job.data(mesh)
  names = ", ".join(run.name for run in runs)
  logs.phase(f"{names}: building the models on {mesh.size} device(s)")
  job.options = job.options or on_device.sampling(runs[0].data, config, targets)[1]
  inputs = multi_run.runs_inputs(
    config,
    [run.data for run in runs],
    [run.split.train for run in runs],
    [run.seed for run in runs],
    [run.cadence.total_steps for run in runs],
    targets,
    mesh,
  )
  with contextlib.ExitStack() as stack:
    for run in runs:
      run_dir = workdir_lib.checkpoints_dir(workdir, run.name)
      run.latest, run.best = stack.enter_context(
        run_checkpoints.Managers(run_dir, config.keep_checkpoints)
      )
    graphdef, state, best_model = _open_or_resume(config, runs, head_sizes(targets), mesh)
    for run in runs:
      tags = {"fold": run.fold, "seed": run.seed}
      run.writer = MetricWriter(workdir, run.name, tags, resume_step=run.step)
      stack.callback(run.writer.close)
    evaluate = _Evaluator(job.evaluate(graphdef, mesh), config, mesh, runs, data, inputs["stats"])
    train = lambda k: job.train(graphdef, mesh, k)  # noqa: E731
    interrupt = stack.enter_context(ctrl_c.BetweenSteps())
    state, best_model = _fit(
      config, train, state, best_model, data, inputs, runs, evaluate, interrupt
    )
    model = _select(runs, state, best_model)
    return _test_and_write(config, workdir, runs, model, state, evaluate, targets)


# --- Stage 1: open or resume -------------------------------------------------------------------


def _open_or_resume(config, runs: list[runs_lib.Run], heads, mesh):
  """(graphdef, stacked state, stacked best model): each run's `latest`, else `init_checkpoint`
  or fresh weights; sets each run's step and recorded best.

  Runs still training resume from the newest step they all hold, so the group's calls fall
  where they fell before a kill and the resume is bit-exact; a run without that step (moved
  aside as damaged) resumes from its own newest.
  """
  graphdef, state = multi_run.init_states(config, heads, [run.seed for run in runs], mesh)
  _, abstract = multi_run.abstract_state(config, heads)
  common = _common_step(runs)
  states, resumed = [], False
  for r, run in enumerate(runs):
    newest = max(run.latest.all_steps(), default=0)
    at_most = None if newest >= run.cadence.total_steps else common
    run.step, restored = run_checkpoints.restore_latest(run.latest, abstract, {}, "device", at_most)
    run.best_step, run.best_score = run_checkpoints.recorded_best(run.best)
    if restored is not None:
      logging.info("Resuming %s from step %d.", run.name, run.step)
    elif config.init_checkpoint:
      restored = state_lib.with_init_checkpoint(config, graphdef, multi_run.unstack(state, r))
    states.append(restored)
    resumed |= restored is not None or run.best_step is not None
  if not resumed:
    return graphdef, state, _copy(state["model"])
  states = [s if s is not None else multi_run.unstack(state, r) for r, s in enumerate(states)]
  best = [
    run_checkpoints.restore_best_model(run.best, run.best_step, abstract)
    if run.best_step is not None
    else s["model"]
    for run, s in zip(runs, states, strict=True)
  ]
  state = multi_run.stack_states(jax.device_get(states), mesh)
  return graphdef, state, multi_run.stack_states(jax.device_get(best), mesh)


def _common_step(runs: list[runs_lib.Run]) -> int:
  """The newest checkpoint step every run still training holds (0: none)."""
  held = [
    set(run.latest.all_steps()) | {0}
    for run in runs
    if max(run.latest.all_steps(), default=0) < run.cadence.total_steps
  ]
  return max(set.intersection(*held)) if held else 0


@jax.jit
def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


# --- Stage 2: fit ------------------------------------------------------------------------------


def _fit(config, train, state, best_model, data, inputs, runs, evaluate, interrupt):
  """Trains every run to its last step; returns (state, best model), both stacked.

  `train(k)` is the compiled k-step call of the group. After a call in which Ctrl-C was pressed
  (`interrupt`), waits for the checkpoints being written and raises `ctrl_c.Interrupted`."""
  names = ", ".join(run.name for run in runs)
  total = sum(run.cadence.total_steps for run in runs)
  if any(run.training for run in runs):
    logs.phase(f"{names}: compiling the train steps (the bar starts after the first call)")
  progress, ticks = None, {}
  while any(run.training for run in runs):
    k = min(
      [multi_run.steps_per_call(config)]
      + [run.cadence.next_due(run.step) - run.step for run in runs if run.training]
    )
    starts = np.asarray([run.step for run in runs], np.int32)
    state, metrics = train(k)(state, data, inputs, starts)
    metrics = jax.device_get(metrics)
    now = time.perf_counter()
    if progress is None:  # throughput and the bar's ETA start after the compiling call
      progress = logs.progress(total, f"{names}: training", initial=int(starts.sum()))
    due = {}
    for r, run in enumerate(runs):
      if not run.training:
        continue
      finite = zip(metrics["finite/loss"][:, r], metrics["finite/grads"][:, r], strict=True)
      runs_lib.check_finite(
        [(run.step + j + 1, *ok) for j, ok in enumerate(finite)], run.name
      )  # fmt: skip
      run.step += k
      progress.update(k)
      ticks.setdefault(run.name, (now, run.step))
      due[r] = run.cadence(run.step)
      if "log" in due[r]:
        _log(config, run, {name: v[-1, r] for name, v in metrics.items()}, ticks, now)
    if any("eval" in d for d in due.values()):
      best_model = _validate(config, runs, due, state, best_model, evaluate)
    for r, d in due.items():
      if "checkpoint" in d:
        _save_latest(runs[r], multi_run.unstack(state, r))
    if interrupt.pressed:
      progress.close()
      for run in runs:
        run.latest.wait_until_finished()
      saved = [run.latest.latest_step() or 0 for run in runs]
      step = min(run.step for run in runs)
      raise ctrl_c.Interrupted(names, step, min(saved), max(r.cadence.total_steps for r in runs))
  interrupt.restore()
  if progress is not None:
    progress.close()
  return state, best_model


def _log(config, run: runs_lib.Run, metrics: dict, ticks: dict, now: float):
  """The run's metrics.jsonl line of its current step, as the single-run trainer writes it."""
  logged = runs_lib.train_logged(metrics)
  logged["train/learning_rate"] = metrics["learning_rate"]
  logged["train/grl_lambda"] = metrics["grl_lambda"]
  run.writer.write(run.step, logged | runs_lib.perf(config, run, ticks, now))


def _validate(config, runs, due, state, best_model, evaluate):
  """Validates the runs due; saves and keeps (on the devices) each improved run's weights."""
  outputs = evaluate(state, "val")
  improved = np.zeros(len(runs), bool)
  for r, run in enumerate(runs):
    if "eval" not in due.get(r, ()):
      continue
    val, losses, score = run_eval.validation(
      config, run.data, run.split.val, state_lib.run_targets(config), outputs[r]
    )
    run.writer.write(run.step, metrics_lib.flatten_scalars(val, "val/") | losses)
    if run.best_score is None or score > run.best_score:
      model = multi_run.unstack(state["model"], r)
      run_checkpoints.save_best(run.best, run.step, {"model": model}, score)
      run.best_step, run.best_score = run.step, score
      improved[r] = True
  return _select_runs(improved, state["model"], best_model)


@jax.jit
def _select_runs(take, new, old):
  return multi_run.select_runs(take, new, old)


def _save_latest(run: runs_lib.Run, state):
  """The run's own state at its step; a step already held was written before a kill, by the
  same computation, and stays as it is."""
  if run.step in run.latest.all_steps():
    return
  run.latest.save(
    run.step,
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      placement=ocp.args.JsonSave({"input.placement": "device", "step": run.step}),
    ),
  )


# --- Stages 3–5: select, test, write -----------------------------------------------------------


def _select(runs, state, best_model):
  """Each run's validation-best weights (its last ones when nothing was selected)."""
  chosen = np.asarray([run.best_step is not None for run in runs])
  return _select_runs(chosen, best_model, state["model"])


def _test_and_write(config, workdir, runs, model, state, evaluate, targets) -> dict:
  logs.phase(f"{', '.join(run.name for run in runs)}: evaluating the test samples")
  outputs = evaluate(nnx.State({"model": model, "optimizer": state["optimizer"]}), "test")
  results = {}
  for r, run in enumerate(runs):
    labels = run_eval.labels_of(run.data, run.split.test, targets)
    test = metrics_lib.target_metrics(labels, outputs[r])
    result = runs_lib.run_result(config, run, test)
    run_eval.write_run(workdir, result, run.data, run.split.test, targets, outputs[r])
    run.writer.write_test(result["selected_step"], metrics_lib.flatten_scalars(test, "test/"))
    results[(run.fold, run.seed)] = result
  return results


class _Evaluator:
  """evaluate(state, 'val' | 'test') -> each run's outputs on its own part, in the part's order."""

  def __init__(self, step, config, mesh, runs, data, stats):
    self._step = step
    self._data, self._stats, self._parts = data, stats, {}
    for part in ("val", "test"):
      indices = [getattr(run.split, part) for run in runs]
      layout, mask = multi_run.eval_layouts(indices, config.eval_batch_size)
      placed = jax.device_put(layout, multi_run.run_sharding(mesh))
      self._parts[part] = (indices, layout, mask, placed)

  def __call__(self, state, part: str) -> list[dict]:
    indices, layout, mask, placed = self._parts[part]
    outputs = jax.device_get(self._step(state, self._data, self._stats, placed))
    rows = layout.shape[1] * layout.shape[2]
    return [
      run_eval.in_order(
        {k: v[r].reshape(rows, *v.shape[3:]) for k, v in outputs.items()},
        layout[r].reshape(-1),
        mask[r].reshape(-1),
        part_indices,
      )
      for r, part_indices in enumerate(indices)
    ]
