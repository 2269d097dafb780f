"""The fit/evaluate loop: one run per (seed, fold); select on validation; touch test once.

A run goes through five stages: open or resume (`_open_or_resume`), fit (`_fit`), select the
validation-best weights (`_select`), test (`_evaluate` on the test split) and write (`_write_run`).
A `Run` holds where a run stands (its step, its best step and score, its checkpoint managers and
metric writer); the stages read and advance it.
With the data on the devices (`resolve_placement`), `emer_jax.train.parallel` takes the runs
through the same stages in groups trained together, writing the same files.

Workdir layout:
  .lock                        held by the one process writing here (`workdir.locked`)
  config.json                  the config the workdir was started with (a rerun must match it)
  metrics.jsonl                one line per logged step: step, fold, seed, train/…, val/…
  tensorboard/fold{k}_seed{s}  TensorBoard events
  checkpoints/fold{k}_seed{s}/latest      full training state and, by placement, the grain
                                          iterator (`data`) or a `placement` record (resume)
  checkpoints/fold{k}_seed{s}/best        model weights chosen on validation, with their score
  checkpoints/fold{k}_seed{s}/unreadable  damaged checkpoints moved aside on resume
  runs/fold{k}_seed{s}.json    a finished run's test metrics and config (a rerun skips it)
  runs/fold{k}_seed{s}.normalisation.json   eye/gaze mean and std of the run's training part
  results.json                 every run's test metrics, their mean and std, the config
  eval/                        what `mode='eval'` writes (the same files); training never reads it
"""

import dataclasses
import datetime
import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AxisType

from emer_jax import config_check, logs, models, paths
from emer_jax.data import on_device, pipeline
from emer_jax.data.source import open_source, prepared_builder
from emer_jax.data.splits import make_split
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation import predictions, report
from emer_jax.protocols import TARGETS, get_protocol, head_sizes
from emer_jax.train import checkpoint, ctrl_c, optim, steps
from emer_jax.train import workdir as workdir_lib
from emer_jax.train.writers import MetricWriter, split_losses

LOWER_IS_BETTER = ("mae", "mse", "rmse")
EVAL_DIR = "eval"


class NonFiniteError(config_check.UserError, FloatingPointError):
  """A stop the message explains (too high a learning rate, bad data): one line, no traceback."""


class NothingToEvaluate(config_check.UserError):
  pass


def make_mesh(config) -> jax.sharding.Mesh:
  """A ('data', 'model') mesh over all devices; -1 on one axis takes what the other leaves."""
  count = jax.device_count()
  data, model = config.mesh.data, config.mesh.model
  if data == -1:
    data = count // model
  if model == -1:
    model = count // data
  if data * model != count:
    raise config_check.ConfigError(
      f"mesh.data={config.mesh.data}, mesh.model={config.mesh.model}: the mesh {data}×{model} "
      f"does not cover the {count} devices (leave one axis at -1)."
    )
  return jax.make_mesh((data, model), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def run_targets(config) -> tuple[str, ...]:
  protocol = get_protocol(config.protocol)
  return tuple(dict.fromkeys(protocol.targets + protocol.auxiliary + tuple(config.extra_targets)))


def run_name(fold: int, seed: int) -> str:
  return f"fold{fold}_seed{seed}"


def _json_safe(obj):
  """NaN (e.g. the std of a single run) becomes null, so the files are strict JSON."""
  if isinstance(obj, dict):
    return {k: _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, list | tuple):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def write_json(path: str, obj):
  """Writes atomically (a kill never leaves half a file), from process 0 only."""
  if jax.process_index():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(_json_safe(obj), f, indent=2, allow_nan=False)
  os.replace(tmp, path)


def _config_json(config) -> dict:
  return json.loads(config.to_json_best_effort())


# --- Entry point -------------------------------------------------------------------------------


def train_and_evaluate(config, workdir: str, *, restart: bool = False) -> dict:
  """Trains and tests one model per (seed, fold) and writes `results.json`; returns it.

  With `config.mode == 'eval'` it trains nothing and writes to `workdir/eval/` (`evaluate`).
  `restart` moves an existing workdir's contents aside instead of refusing a changed config.
  """
  config_check.check(config)
  paths.check_run_paths(config, workdir)
  check_init_checkpoint(config)
  workdir = os.path.abspath(workdir)
  with workdir_lib.locked(workdir):
    if config.mode == "eval":
      return evaluate(config, workdir)
    if restart and jax.process_index() == 0:
      aside = workdir_lib.move_aside(workdir)
      if aside:
        logging.warning("--restart: moved the workdir's previous contents to %s.", aside)
    if restart:
      multihost_utils.sync_global_devices("workdir moved aside")
    workdir_lib.check_same_config(workdir, config)
    data, mesh = _open_data(config)
    placement, arrays = resolve_placement(config, data)
    os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
    workdir_lib.write_config(workdir, config)
    if placement == "device":
      from emer_jax.train import parallel  # noqa: PLC0415  (it imports this module)

      runs = parallel.train_runs(config, workdir, data, arrays)
    else:
      runs = [
        _run(config, workdir, data, mesh, fold=fold, seed=seed) for fold, seed in run_keys(config)
      ]
    return _write_results(config, workdir, runs, workdir_lib.read_config(workdir))


def run_keys(config) -> list[tuple[int, int]]:
  """(fold, seed) of every run of the config, in the order they train and are reported."""
  return [(fold, seed) for seed in config.seeds for fold in config.folds]


def resolve_placement(config, data) -> tuple[str, dict | None]:
  """('device', the decoded dataset) or ('host', None): where `input.placement` puts the data.

  `auto` keeps the host where the device path cannot serve (a CPU and several processes:
  `on_device.placement`; the eye stream reduced to its clocks); `parallel_runs` > 1 needs the
  devices.
  """
  choice, arrays = config.input.placement, None
  if choice == "auto" and config.model.eye_columns != "all":
    choice = "host"
  if choice == "device" and jax.process_count() > 1:
    raise config_check.ConfigError(
      f"input.placement='device' with {jax.process_count()} processes: the data on the devices "
      "serves one process; set input.placement='host' (or 'auto')."
    )

  def decoded_size():
    nonlocal arrays
    arrays = on_device.decode_for(data, config, run_targets(config))
    return on_device.nbytes(arrays)

  placement = on_device.placement(choice, decoded_size)
  if placement == "host" and config.parallel_runs > 1:
    raise config_check.ConfigError(
      f"parallel_runs={config.parallel_runs} needs the data on the devices, but "
      f"input.placement={config.input.placement!r} resolved to 'host' here "
      f"({jax.default_backend()} backend); set input.placement='device', or parallel_runs=1."
    )
  if placement == "device" and arrays is None:
    decoded_size()
  logging.info("input.placement=%r: the data is on the %ss.", config.input.placement, placement)
  return placement, arrays


def check_init_checkpoint(config) -> None:
  """`init_checkpoint`'s arrays have the shapes of the model the config builds."""
  if not config.init_checkpoint:
    return
  heads = head_sizes(run_targets(config))
  abstract = nnx.eval_shape(lambda: models.build_model(config.model, heads=heads, rngs=nnx.Rngs(0)))
  path = os.path.abspath(config.init_checkpoint)
  checkpoint.check_matches(
    path,
    checkpoint.leaf_specs(nnx.state(abstract)),
    checkpoint.model_metadata(path),
    "Set init_checkpoint to a checkpoint of this model, or the model's sizes to the "
    "checkpoint's (a conversion's config.json lists them).",
  )


def _open_data(config):
  mesh = make_mesh(config)
  if jax.process_index() == 0:  # builds a missing synthetic dataset once
    prepared_builder(config.dataset, config.data_dir)
  multihost_utils.sync_global_devices("dataset ready")
  data = open_source(config.dataset, config.data_dir, prepare=False, cache=config.input.cache)
  return data, mesh


def _write_results(config, out_dir, runs, recorded: dict) -> dict:
  """results.json (with `recorded`, the config the runs were started with), then reports."""
  results = {
    "protocol": config.protocol,
    "targets": list(get_protocol(config.protocol).targets),
    "runs": runs,
    **metrics_lib.summarize([run["metrics"] for run in runs]),
    "config": recorded,
  }
  save = lambda r: write_json(os.path.join(out_dir, "results.json"), r)  # noqa: E731
  logs.phase(f"writing reports to {out_dir}")
  return report.write_run_reports(out_dir, results, save=save)


# --- One run -----------------------------------------------------------------------------------


def run_split(config, data, fold):
  """A run's train/val/test split of the dataset (robustness re-derives it the same way)."""
  return make_split(
    data.index["fold"],
    data.index["subject_id"],
    fold,
    scheme=config.fold_scheme,
    val_fraction=config.val_fraction,
    seed=config.seed,
  )


def _train_data(config, data, split, targets, seed):
  """The run's training batches: the one place its input pipeline is created."""
  return iter(pipeline.train_dataset(data, split.train, config, targets, seed=seed))


@dataclasses.dataclass(frozen=True)
class Cadence:
  """Which of log, eval and checkpoint fall on a step (the last step has all three)."""

  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  validate: bool  # the run has a validation split

  def __call__(self, step: int) -> set[str]:
    last = step == self.total_steps
    due = {
      "log": step % self.log_every == 0 or last,
      "eval": self.validate and (step % self.eval_every == 0 or last),
      "checkpoint": step % self.checkpoint_every == 0 or last,
    }
    return {name for name, on in due.items() if on}

  def next_due(self, step: int) -> int:
    """The first step after `step` on which something is due (at most the last step)."""
    every = [self.log_every, self.checkpoint_every] + ([self.eval_every] if self.validate else [])
    return min([self.total_steps] + [(step // n + 1) * n for n in every])


def _total_steps(config, split) -> tuple[int, int]:
  """(total steps, steps per epoch) of a run."""
  steps_per_epoch = max(len(split.train) // config.batch_size, 1)
  total = config.total_steps if config.total_steps > 0 else config.num_epochs * steps_per_epoch
  return total, steps_per_epoch


def run_cadence(config, split) -> Cadence:
  total_steps, steps_per_epoch = _total_steps(config, split)
  return Cadence(
    total_steps,
    config.log_every_steps,
    config.eval_every_steps or steps_per_epoch,
    config.checkpoint_every_steps,
    validate=len(split.val) > 0,
  )


def run_result(config, run, test) -> dict:
  """What `runs/<run>.json` records of a tested run (`_write_run` adds masked metrics)."""
  return {
    "fold": run.fold,
    "seed": run.seed,
    "selected_step": run.best_step or run.cadence.total_steps,
    "num_train": len(run.split.train),
    "num_val": len(run.split.val),
    "num_test": len(run.split.test),
    "metrics": test,
    "config": _config_json(config),
  }


@dataclasses.dataclass
class Run:
  """One run (a fold and a seed) and where it stands; both placements' stages update it."""

  fold: int
  seed: int
  split: object
  data: object  # the source carrying the statistics of the run's training part
  cadence: Cadence
  step: int = 0  # training steps done
  best_step: int | None = None  # the validation-best step so far, and its score
  best_score: float | None = None
  latest: object = None  # checkpoint managers
  best: object = None
  writer: MetricWriter | None = None

  @property
  def name(self) -> str:
    return run_name(self.fold, self.seed)

  @property
  def training(self) -> bool:
    return self.step < self.cadence.total_steps


def new_run(config, workdir, data, fold, seed) -> Run:
  """A run not started or resumed yet: its split and its training part's statistics (recorded)."""
  split = run_split(config, data, fold)
  data = _normalised(data, split.train, config, pipeline.normalisation_path(workdir, fold, seed))
  return Run(fold, seed, split, data, run_cadence(config, split))


def _run(config, workdir, data, mesh, *, fold: int, seed: int) -> dict:
  done = finished_run(config, workdir, fold, seed)
  if done is not None:
    return done
  targets = run_targets(config)
  run = new_run(config, workdir, data, fold, seed)
  logs.phase(f"{run.name}: building the model")
  graphdef, abstract, state = init_state(
    config, head_sizes(targets), seed, run.cadence.total_steps, mesh
  )
  managers = _managers(os.path.join(workdir, "checkpoints", run.name), config.keep_checkpoints)
  with jax.set_mesh(mesh), managers as (run.latest, run.best), ctrl_c.BetweenSteps() as interrupt:
    train_iter = _train_data(config, run.data, run.split, targets, seed)
    state = _open_or_resume(config, run, graphdef, abstract, state, train_iter)
    eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
    run.writer = MetricWriter(workdir, run.name, {"fold": fold, "seed": seed}, run.step)

    def validate(s):
      """Validation metrics, task losses and selection score of state `s`."""
      outputs = predict(eval_step, s, run.data, run.split.val, config, targets, mesh)
      return validation(config, run.data, run.split.val, targets, outputs)

    try:
      state = _fit(config, run, graphdef, state, train_iter, mesh, validate, interrupt)
      state = _select(run, state, abstract)
      desc = f"{run.name}: evaluating {len(run.split.test)} test samples"
      outputs, test = _evaluate(
        eval_step, state, run.data, run.split.test, config, targets, mesh, desc
      )
      result = run_result(config, run, test)
      _write_run(workdir, result, run.data, run.split.test, targets, outputs)
      run.writer.write_test(result["selected_step"], metrics_lib.flatten_scalars(test, "test/"))
    finally:
      run.writer.close()
  return result


def run_json_path(out_dir, fold, seed) -> str:
  return os.path.join(out_dir, "runs", f"{run_name(fold, seed)}.json")


def finished_run(config, workdir, fold, seed) -> dict | None:
  """The recorded result of a finished run (a rerun skips it), or None; one recorded under
  another config is an error."""
  path = run_json_path(workdir, fold, seed)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    result = json.load(f)
  if "config" not in result:  # recorded before runs kept their config: config.json vouches
    return result
  message = workdir_lib.changed_message(
    f"The finished run {path}",
    result["config"],
    _config_json(config),
    "Rerun with the config it was trained with, or use a new --workdir.",
  )
  if message:
    raise workdir_lib.ConfigChanged(message)
  return result


def init_state(config, heads: dict, seed: int, total_steps: int, mesh):
  """(graphdef, abstract state, state) of {'model', 'optimizer'}, created sharded on `mesh`.

  Parameters land where their `nnx.with_partitioning` annotations put them; the abstract state
  carries those shardings, so checkpoints restore onto the same layout. The initialisation and
  dropout streams of a seed are two halves of one key, so no seed's stream is another's.
  """
  dtype = jnp.dtype(config.dtype)

  def init():
    params, dropout = stream_keys(seed)
    model = models.build_model(
      config.model, heads=heads, rngs=nnx.Rngs(params=params, dropout=dropout), dtype=dtype
    )
    optimizer = nnx.Optimizer(model, optim.make_optimizer(config, total_steps), wrt=nnx.Param)
    return {"model": model, "optimizer": optimizer}

  with jax.set_mesh(mesh):
    graphdef, abstract = nnx.get_abstract_model(init, mesh)
    state = jax.jit(
      lambda: nnx.state(init()), out_shardings=nnx.get_named_sharding(abstract, mesh)
    )()
  return graphdef, abstract, state


def stream_keys(seed: int):
  """(initialisation key, dropout key) of a run's seed: two halves of one key."""
  params, dropout = jax.random.split(jax.random.key(seed))
  return params, dropout


class _managers:
  """The run's `latest` (full state, for resuming) and `best` (weights and score) managers.

  Closing waits for asynchronous saves, also when training fails or is interrupted.
  """

  def __init__(self, run_dir, keep: int):
    options = dict(create=True, enable_async_checkpointing=True)
    self.latest = ocp.CheckpointManager(
      os.path.join(run_dir, "latest"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, **options),
    )
    self.best = ocp.CheckpointManager(
      os.path.join(run_dir, "best"), options=ocp.CheckpointManagerOptions(max_to_keep=1, **options)
    )

  def __enter__(self):
    return self.latest, self.best

  def __exit__(self, *exc):
    self.latest.close()
    self.best.close()


# --- Stage 1: open or resume -------------------------------------------------------------------


def _open_or_resume(config, run, graphdef, abstract, state, train_iter):
  """The newest readable `latest` checkpoint's state, else `init_checkpoint`'s or `state`; sets
  the run's step and the best step and score recorded on disk."""
  items = {"data": grain.checkpoint.CheckpointRestore(train_iter)}
  run.step, restored = restore_latest(run.latest, abstract, items, "host")
  run.best_step, run.best_score = _recorded_best(run.best)
  if restored is not None:
    logging.info("Resuming %s from step %d.", run.name, run.step)
    return restored
  if config.init_checkpoint:
    return with_init_checkpoint(config, graphdef, state)
  return state


def with_init_checkpoint(config, graphdef, state):
  trained = nnx.merge(graphdef, state)
  checkpoint.restore_model(config.init_checkpoint, trained["model"])
  return nnx.state(trained)


class PlacementMismatch(config_check.UserError):
  """A run's checkpoint written with the other `input.placement` (not damage: left in place)."""


# The item beside `state` that says how a `latest` checkpoint's run drew its batches: the host
# path's grain iterator, or the device path's record (sampling keyed by seed and step).
PLACEMENT_ITEMS = {"host": "data", "device": "placement"}


def _check_placement(directory, step, placement):
  for other, item in PLACEMENT_ITEMS.items():
    if other != placement and os.path.isdir(os.path.join(directory, str(step), item)):
      raise PlacementMismatch(
        f"The checkpoint {directory}/{step} was written with the data on the {other} "
        f"(input.placement={other!r}); this run resolves input.placement to {placement!r}, "
        "whose batches follow another random stream. Rerun with "
        f"--config.input.placement={other}, or use a new --workdir (or --restart)."
      )


def restore_latest(manager, abstract_state, items: dict, placement: str, at_most=None):
  """(step, state) of the newest readable checkpoint (of step ≤ `at_most` if given), or (0, None).

  `items` are the restore args of the items beside `state` (the host path's grain iterator).
  A checkpoint whose files cannot be read is moved aside (`../unreadable/latest-<step>-<time>`)
  with a warning and an earlier one is tried. One that reads but does not fit the model (other
  keys, shapes or dtypes), or was written with the other `placement`, is an error naming it.
  """
  expected = checkpoint.leaf_specs(abstract_state)
  for step in manager.all_steps():
    _check_placement(os.fspath(manager.directory), step, placement)
  for step in sorted(manager.all_steps(), reverse=True):
    if at_most is not None and step > at_most:
      continue
    try:
      found = checkpoint.model_metadata(os.path.join(manager.directory, str(step), "state"))
      if not found:
        raise ValueError("its metadata lists no arrays")
    except Exception as e:  # noqa: BLE001  (metadata that cannot be read: damage)
      _move_aside(manager, step, e)
      continue
    checkpoint.check_matches(
      f"{manager.directory}/{step}",
      expected,
      found,
      "It was written by another model or version: use a new --workdir, or --restart.",
    )
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), **items),
      )
    except Exception as e:  # noqa: BLE001  (arrays that cannot be read: damage)
      _move_aside(manager, step, e)
      continue
    return step, restored.state
  return 0, None


def _move_aside(manager, step, error):
  directory = os.fspath(manager.directory)
  stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
  aside = os.path.join(
    os.path.dirname(directory), "unreadable", f"{os.path.basename(directory)}-{step}-{stamp}"
  )
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(aside), exist_ok=True)
    os.rename(os.path.join(directory, str(step)), aside)
  multihost_utils.sync_global_devices(f"moved aside {directory}/{step}")
  manager.reload()
  logging.warning(
    "Checkpoint %d in %s is unreadable (%s: %s); moved it to %s and trying an earlier one.",
    step,
    directory,
    type(error).__name__,
    str(error)[:300],
    aside,
  )


# --- Stage 2: fit ------------------------------------------------------------------------------


def _recorded_best(best) -> tuple[int | None, float | None]:
  """(step, score) of the best checkpoint on disk: the selection survives a kill and resume."""
  for step in sorted(best.all_steps(), reverse=True):
    try:
      meta = best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
      return step, meta["score"]
    except Exception as e:  # noqa: BLE001
      _move_aside(best, step, e)
  return None, None


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
      check_finite(jax.device_get(pending))
      pending = []
      logged = train_logged(jax.device_get(metrics))
      logged |= {"train/learning_rate": schedule(run.step - 1), "train/grl_lambda": lam}
      run.writer.write(run.step, logged | perf(config, run, ticks, time.perf_counter()))
      progress.set_postfix(loss=f"{float(logged['train/loss/total']):.4f}")
    if "eval" in due:
      val, val_losses, score = validate(state)
      run.writer.write(run.step, metrics_lib.flatten_scalars(val, "val/") | val_losses)
      if run.best_score is None or score > run.best_score:
        _save_best(run.best, run.step, state, score)
        run.best_step, run.best_score = run.step, score
    if "checkpoint" in due:
      check_finite(jax.device_get(pending))
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


def perf(config, run: Run, ticks: dict, now: float) -> dict:
  """Throughput since the run's previous log (counted from the end of the compiling step)."""
  tick, tick_step = ticks[run.name]
  if run.step <= tick_step:
    return {}
  ticks[run.name] = (now, run.step)
  rate = (run.step - tick_step) / (now - tick)
  return {"perf/steps_per_s": rate, "perf/samples_per_s": rate * config.batch_size}


def train_logged(metrics: dict) -> dict:
  """A train step's metrics as metrics.jsonl names them (bookkeeping left out)."""
  skip = ("finite/loss", "finite/grads", "active", "learning_rate", "grl_lambda")
  return {f"train/{k}": v for k, v in metrics.items() if k not in skip}


def _save_best(best, step, state, score):
  """Replaces the best checkpoint, finished before the step's `latest` save begins, so a resume
  never finds a `latest` newer than the selection it saw."""
  for old in best.all_steps():
    if old > step:  # only a resume that did not reproduce the selection exactly
      best.delete(old)
  best.save(
    step,
    args=ocp.args.Composite(
      model=ocp.args.StandardSave(state["model"]), meta=ocp.args.JsonSave({"score": score})
    ),
  )
  best.wait_until_finished()


def check_finite(pending, name: str = ""):
  """Raises NonFiniteError at the first (step, finite loss, finite gradients) that is not."""
  for step, finite_loss, finite_grads in pending:
    bad = [n for n, ok in (("loss", finite_loss), ("gradients", finite_grads)) if not bool(ok)]
    if bad:
      raise NonFiniteError(
        f"{name + ': ' if name else ''}Non-finite {' and '.join(bad)} at step {step}; the "
        "update was skipped and the run stopped. The last good checkpoint is kept."
      )


def _selection_score(config, metrics: dict) -> float:
  """Higher is better: the mean of the selection metric over the protocol's targets."""
  protocol = get_protocol(config.protocol)
  metric = config.selection_metric or ("war" if protocol.kind == "classification" else "mae")
  value = float(np.mean([metrics[t][metric] for t in protocol.targets]))
  return -value if metric in LOWER_IS_BETTER else value


# --- Stage 3: select ---------------------------------------------------------------------------


def _select(run, state, abstract):
  """The state with the validation-best weights (the last state when nothing was selected)."""
  if run.best_step is None:
    return state
  model = _restore_best_model(run.best, run.best_step, abstract)
  return nnx.State({"model": model, "optimizer": state["optimizer"]})


def _restore_best_model(best, step, abstract):
  restored = best.restore(
    step, args=ocp.args.Composite(model=ocp.args.StandardRestore(abstract["model"]))
  )
  return restored.model


# --- Stage 4: test (and validate) --------------------------------------------------------------


def predict(eval_step, state, data, indices, config, targets, mesh, desc=None) -> dict:
  """Model outputs for `indices` (in that order), gathered on every process; a bar if `desc`.

  Each row is placed by the batch's `index`; padding rows (`mask` false) are dropped.
  """
  outputs, index, mask = [], [], []
  num_batches = -(-len(indices) // config.eval_batch_size)
  bar = logs.progress(num_batches, desc, unit="batch", leave=False) if desc else None
  for batch in pipeline.eval_dataset(data, indices, config, targets):
    if bar is not None:
      bar.update(1)
    index.append(multihost_utils.process_allgather(batch["index"], tiled=True))
    mask.append(multihost_utils.process_allgather(batch["mask"], tiled=True))
    inputs = {k: v for k, v in batch.items() if k in steps.MODEL_INPUTS}
    out = eval_step(state, pipeline.to_global(inputs, mesh))
    outputs.append(multihost_utils.process_allgather(out, tiled=True))
  if bar is not None:
    bar.close()
  outputs = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
  return in_order(outputs, np.concatenate(index), np.concatenate(mask), indices)


def in_order(outputs: dict, index, mask, indices) -> dict:
  """Rows of `outputs` (one per evaluated item, its sample `index`; padding where `mask` is
  false) rearranged to follow `indices`."""
  mask = np.asarray(mask).astype(bool)
  row = {int(i): r for r, i in enumerate(np.asarray(index)) if mask[r]}
  order = np.asarray([row[int(i)] for i in indices], dtype=np.int64)
  return {k: np.asarray(v)[order] for k, v in outputs.items()}


def labels_of(data, indices, targets) -> dict:
  return {name: data.index[name][indices] for name in targets}


def _evaluate(eval_step, state, data, indices, config, targets, mesh, desc=None):
  """(outputs, metrics) on `indices`; a progress bar labelled `desc` if given."""
  outputs = predict(eval_step, state, data, indices, config, targets, mesh, desc)
  return outputs, metrics_lib.target_metrics(labels_of(data, indices, targets), outputs)


def validation(config, data, indices, targets, outputs) -> tuple[dict, dict, float]:
  """(metrics, task losses, selection score) of a run's validation outputs."""
  metrics = metrics_lib.target_metrics(labels_of(data, indices, targets), outputs)
  losses = split_losses(data.index, indices, outputs, dict(config.loss.head_weights))
  return metrics, losses, _selection_score(config, metrics)


# --- Stage 5: write ----------------------------------------------------------------------------


def _write_run(out_dir, result, data, indices, targets, outputs):
  """The run's predictions CSV, then `runs/<run>.json` with masked-sample metrics added."""
  masked = data.index["er_emotion"][indices] != data.index["fer_emotion"][indices]
  labels = labels_of(data, indices, targets)
  for name, values in metrics_lib.masked_metrics(labels, outputs, masked).items():
    result["metrics"][name] |= values
  _write_predictions(
    out_dir, result["fold"], result["seed"], data, indices, targets, outputs, masked
  )
  os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
  write_json(run_json_path(out_dir, result["fold"], result["seed"]), result)


def _normalised(data, train_indices, config, path):
  """`data` with the statistics of the training part, recorded at `path`.

  A resumed run finds them recorded already; if they differ, the data changed under it.
  """
  data = pipeline.with_normalisation(data, train_indices, config)
  if os.path.exists(path):
    recorded = pipeline.load_normalisation(path)
    if recorded.to_dict() != data.normalisation.to_dict():
      raise config_check.UserError(
        f"{path} holds other normalisation statistics than this run's training part has now: "
        "the dataset or the split changed since the run started. Use a new workdir."
      )
  os.makedirs(os.path.dirname(path), exist_ok=True)
  write_json(path, data.normalisation.to_dict())
  return data


def _write_predictions(out_dir, fold, seed, data, indices, targets, outputs, masked):
  if jax.process_index():
    return
  classification = [t for t in targets if TARGETS[t].kind == "classification"]
  probabilities = {t: jax.nn.softmax(outputs[t]) for t in classification}
  predictions.write_predictions(
    out_dir,
    fold,
    seed,
    sample_id=data.index["sample_id"][indices],
    subject_id=data.index["subject_id"][indices],
    y_true=labels_of(data, indices, targets),
    y_pred=outputs,
    probabilities=jax.device_get(probabilities),
    masked=masked,
  )


# --- Eval mode ---------------------------------------------------------------------------------


def evaluate(config, workdir: str) -> dict:
  """Tests `init_checkpoint`, else each run's `best` (else its `latest`), writing `workdir/eval/`.

  Never trains, and never writes anything training owns.
  """
  sources = {}
  if not config.init_checkpoint:
    workdir_lib.check_same_config(workdir, config)
    sources = _eval_sources(config, workdir)
  out_dir = os.path.join(workdir, EVAL_DIR)
  data, mesh = _open_data(config)
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
  write_json(os.path.join(out_dir, "config.json"), _config_json(config))
  targets = run_targets(config)
  runs = []
  for seed in config.seeds:
    for fold in config.folds:
      graphdef, abstract, state = init_state(config, head_sizes(targets), seed, 0, mesh)
      split = run_split(config, data, fold)
      run_data = eval_normalised(config, data, split, workdir, out_dir, fold, seed)
      with jax.set_mesh(mesh):
        source = sources.get((fold, seed))
        if source is None:
          state = with_init_checkpoint(config, graphdef, state)
          evaluated = os.path.abspath(config.init_checkpoint)
        else:
          state, evaluated = load_for_eval(source, abstract, state)
        logging.info("Evaluating %s: %s.", run_name(fold, seed), evaluated)
        eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
        desc = f"{run_name(fold, seed)}: evaluating {len(split.test)} test samples"
        outputs, test = _evaluate(
          eval_step, state, run_data, split.test, config, targets, mesh, desc
        )
      result = {
        "fold": fold,
        "seed": seed,
        "evaluated": evaluated,
        "num_test": len(split.test),
        "metrics": test,
        "config": _config_json(config),
      }
      if source is not None:  # a run's own checkpoint: its step, and whether training finished
        finished = os.path.exists(run_json_path(workdir, fold, seed))
        result |= {"checkpoint_step": source[2], "finished": finished}
      _write_run(out_dir, result, data, split.test, targets, outputs)
      runs.append(result)
  return _write_results(config, out_dir, runs, _config_json(config))


def eval_normalised(config, data, split, workdir, out_dir, fold, seed):
  """`data` with the run's recorded training statistics; where the run recorded none (e.g. an
  `init_checkpoint` from elsewhere), those of its training part, recorded under `out_dir`."""
  recorded = pipeline.normalisation_path(workdir, fold, seed)
  if os.path.exists(recorded):
    return dataclasses.replace(data, normalisation=pipeline.load_normalisation(recorded))
  return _normalised(data, split.train, config, pipeline.normalisation_path(out_dir, fold, seed))


def _eval_sources(config, workdir) -> dict:
  """(fold, seed) -> (kind, directory, step) of what to test: `best`, else `latest`."""
  sources, missing = {}, []
  for seed in config.seeds:
    for fold in config.folds:
      run_dir = os.path.join(workdir, "checkpoints", run_name(fold, seed))
      for kind in ("best", "latest"):
        directory = os.path.join(run_dir, kind)
        found = os.path.isdir(directory) and ocp.utils.checkpoint_steps(directory)
        if found:
          sources[(fold, seed)] = (kind, directory, max(found))
          if kind == "latest":
            logging.warning(
              "%s has no best checkpoint; evaluating its latest (step %d).",
              run_name(fold, seed),
              max(found),
            )
          break
      else:
        missing.append(run_dir)
  if missing:
    raise NothingToEvaluate(
      "Nothing to evaluate: no init_checkpoint is set and there is no checkpoint in "
      + ", ".join(f"{d}/best or {d}/latest" for d in missing)
      + ". Train first, or set --config.init_checkpoint=DIR/model."
    )
  return sources


def load_for_eval(source, abstract, state):
  """The state with the weights of a run's `best` (or `latest`) checkpoint, read in place."""
  kind, directory, step = source
  if kind == "best":
    with ocp.StandardCheckpointer() as checkpointer:
      model = checkpointer.restore(os.path.join(directory, str(step), "model"), abstract["model"])
  else:  # the model alone: the optimiser state differs between placements
    item = {"model": abstract["model"]}
    with ocp.PyTreeCheckpointer() as checkpointer:
      model = checkpointer.restore(
        os.path.join(directory, str(step), "state"),
        args=ocp.args.PyTreeRestore(
          item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True
        ),
      )["model"]
  return nnx.State({"model": model, "optimizer": state["optimizer"]}), f"{directory}/{step}"
