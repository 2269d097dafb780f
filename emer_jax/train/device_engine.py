"""The device engine: runs trained together with the data on the devices (`input.placement`
resolved to 'device').

The runs of a config go in groups of at most `parallel_runs` (0: all in one group); a sweep's
points that share a program (`multi_run.program_key`) train in the same groups, each run with
its own traced values. A group is one program (`multi_run`): its states stacked on a leading
run axis over a 'runs' mesh, each run with its own split, training statistics, batches,
schedules, validation selection and best weights (kept on the devices). `run_loop` takes a
group through the same bookkeeping as a host run, so every run writes the same files.

A run's `latest` checkpoint holds its own (unstacked) state and a `placement` record in place
of the grain iterator: its batches are keyed by (seed, step), so the step is all a resume
needs. Each call trains k ≤ `steps_per_call` steps, k ending at the next step on which any run
logs, validates or checkpoints (one compilation per distinct k).
"""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from emer_jax import logs
from emer_jax.data import on_device, pipeline
from emer_jax.protocols import head_sizes
from emer_jax.train import multi_run, run_checkpoints, run_eval
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib


def engines(config, data, arrays, num_points=None):
  """(group size, engine_for) of the device placement; `arrays` is the dataset decoded for
  `config` (`on_device.decode_for`), put on each set of devices once for all groups; a sweep
  point with other input sizes decodes its own from `data`."""
  jobs = {}

  def engine_for(runs, stack):
    program = runs[0].config
    key = multi_run.program_key(program)
    if key not in jobs:
      same = _decoding(program, data) == _decoding(config, data)
      decoded = (
        arrays if same else on_device.decode_for(data, program, state_lib.run_targets(program))
      )
      jobs[key] = _Job(program, decoded)
    return DeviceEngine(program, runs, jobs[key])

  size = config.parallel_runs or len(runs_lib.run_keys(config, num_points))
  return size, engine_for


def _decoding(config, data) -> tuple:
  """What `on_device.decode_for` reads of a config."""
  return (
    config.input.num_frames,
    config.input.num_eye_rows,
    tuple(pipeline.model_clock_columns(data, config)),
    pipeline.eye_clock_mode(config),
  )


class _Job:
  """What the groups of one program share: its decoded dataset, put on each set of devices once,
  and the compiled steps, one per (devices, k)."""

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


class DeviceEngine:
  """A group's stacked states, its best weights so far (on the devices) and compiled steps."""

  compiling = "compiling the train steps (the bar starts after the first call)"

  def __init__(self, config, runs: list[runs_lib.Run], job: _Job):
    """`config`: the program's (any of the runs'; they differ only in traced values)."""
    self.runs, self.job = runs, job
    targets = state_lib.run_targets(config)
    self.mesh = multi_run.run_mesh(len(runs))
    self.data = job.data(self.mesh)
    names = ", ".join(run.name for run in runs)
    logs.phase(f"{names}: building the models on {self.mesh.size} device(s)")
    job.options = job.options or on_device.sampling(runs[0].data, config, targets)[1]
    self.inputs = multi_run.runs_inputs(
      config,
      [run.data for run in runs],
      [run.split.train for run in runs],
      [run.seed for run in runs],
      [run.cadence.total_steps for run in runs],
      targets,
      self.mesh,
      [run.config for run in runs],
    )
    self.graphdef, self.state, self.best_model = _open_or_resume(
      config, runs, head_sizes(targets), self.mesh
    )
    self.steps_per_call = multi_run.steps_per_call(config)
    step = job.evaluate(self.graphdef, self.mesh)
    self._evaluate = _Evaluator(step, config, self.mesh, runs, self.data, self.inputs["stats"])

  def advance(self, k: int) -> list:
    starts = np.asarray([run.step for run in self.runs], np.int32)
    train = self.job.train(self.graphdef, self.mesh, k)
    self.state, metrics = train(self.state, self.data, self.inputs, starts)
    metrics = jax.device_get(metrics)
    return [
      (
        list(zip(metrics["finite/loss"][:, r], metrics["finite/grads"][:, r], strict=True)),
        lambda r=r: {name: v[-1, r] for name, v in metrics.items()},
      )
      for r in range(len(self.runs))
    ]

  def validate(self) -> list:
    return self._evaluate(self.state, "val")

  def save_best(self, improved: dict) -> None:
    """Saves each improved run's weights and keeps them (on the devices) as its best."""
    for r, score in improved.items():
      model = multi_run.unstack(self.state["model"], r)
      run_checkpoints.save_best(self.runs[r].best, self.runs[r].step, {"model": model}, score)
    take = np.asarray([r in improved for r in range(len(self.runs))])
    self.best_model = _select_runs(take, self.state["model"], self.best_model)

  def save_latest(self, r: int) -> None:
    """The run's own state at its step; a step already held was written before a kill, by the
    same computation, and stays as it is."""
    run = self.runs[r]
    if run.step in run.latest.all_steps():
      return
    run.latest.save(
      run.step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(multi_run.unstack(self.state, r)),
        placement=ocp.args.JsonSave({"input.placement": "device", "step": run.step}),
      ),
    )

  def test(self) -> list:
    """Each run's test outputs with its validation-best weights (its last ones when nothing was
    selected)."""
    logs.phase(f"{', '.join(run.name for run in self.runs)}: evaluating the test samples")
    chosen = np.asarray([run.best_step is not None for run in self.runs])
    model = _select_runs(chosen, self.best_model, self.state["model"])
    return self._evaluate(nnx.State({"model": model, "optimizer": self.state["optimizer"]}), "test")


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
    restored = run_checkpoints.resume(
      config,
      run,
      graphdef,
      abstract,
      {},
      "device",
      lambda r=r: multi_run.unstack(state, r),
      at_most,
    )
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


@jax.jit
def _select_runs(take, new, old):
  return multi_run.select_runs(take, new, old)


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
