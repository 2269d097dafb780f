"""Many runs in one program: the runs of a config (folds × seeds) stacked on a leading run axis.

Parameters, optimiser state, batch statistics and RNG streams carry a leading axis of R runs,
sharded over a 'runs' mesh axis, so runs spread over devices (and hosts). Each run keeps its
own batch of `batch_size`, drawn on the devices from its own training part and seed
(`data.on_device`); `steps_per_call` steps run in one `lax.scan`, with the learning rate and
GRL λ computed in the loop from each run's own `total_steps`. The `TRACED` config keys are
per-run values too (`run_hyper`), so a sweep's points that differ only in them share a program
(`program_key`). No program crosses devices: a run's whole step runs where its state lives,
next to a replica of the dataset, and `unstack` takes a run's state from its own device.

  graphdef, state = init_states(config, heads, seeds, mesh)
  train = make_train_steps(graphdef, config, mesh, steps_per_call=k, **options)
  state, metrics = train(state, data, runs, start)    # metrics: (k, R) per name

Call these outside `jax.set_mesh`: the shardings come from the arguments' placement.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from emer_jax import config_check
from emer_jax.data import on_device, pipeline
from emer_jax.train import optim, steps
from emer_jax.train import state as state_lib

RUNS = "runs"

# Config keys each run of a program holds as traced values (prefixes end with '.').
TRACED = (
  "learning_rate",
  "weight_decay",
  "loss.alpha",
  "loss.beta",
  "loss.head_weights.",
  "grl.value",
  "num_epochs",
  "total_steps",
  "model.modality_dropout",  # rates above 0: a module at 0 is absent (or skips its draws)
  "model.encoder_dropout",
  "model.transformer.dropout",
  "model.transformer.emb_dropout",
)
DROPOUT_RATES = ("encoder_dropout", "transformer.dropout", "transformer.emb_dropout")


def _traced(key: str) -> bool:
  return any(key == k or (k.endswith(".") and key.startswith(k)) for k in TRACED)


def program_key(config) -> str:
  """What a run's program depends on: its config without the `TRACED` keys and the keys that
  change nothing trained (`config_check.MAY_DIFFER`). Runs with equal keys train together."""
  flat = config_check.flat(config)
  key = {k: v for k, v in sorted(flat.items()) if not _traced(k) and not config_check.may_differ(k)}
  rates = ("modality_dropout", *DROPOUT_RATES)
  return json.dumps(key | {f"model.{k} > 0": flat[f"model.{k}"] > 0 for k in rates})


def run_hyper(config, targets) -> dict:
  """A run's `TRACED` values as the train step takes them (`steps.make_train_step`'s `hyper`)."""
  f32 = np.float32
  weights, flat = dict(config.loss.head_weights), config_check.flat(config)
  return {
    "learning_rate": f32(config.learning_rate),
    "weight_decay": f32(config.weight_decay),
    "alpha": f32(config.loss.alpha),
    "beta": f32(config.loss.beta),
    "grl_value": f32(config.grl.value),
    "modality_dropout": f32(config.model.modality_dropout),
    "dropout": {k: f32(flat[f"model.{k}"]) for k in DROPOUT_RATES},
    "head_weights": {t: f32(weights.get(t, 1.0)) for t in targets},
  }


def run_mesh(num_runs: int, devices=None) -> jax.sharding.Mesh:
  """A 'runs' mesh over as many devices as divide `num_runs` (all of them when it is a
  multiple of the device count)."""
  devices = list(devices or jax.devices())
  size = max(d for d in range(1, len(devices) + 1) if num_runs % d == 0)
  return jax.make_mesh((size,), (RUNS,), (AxisType.Auto,), devices=devices[:size])


def run_sharding(mesh) -> NamedSharding:
  """Leading (run) axis split over 'runs'."""
  return NamedSharding(mesh, P(RUNS))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _model_and_optimizer(config, heads, seed):
  return state_lib.model_and_optimizer(config, heads, seed, optim.make_injected_optimizer(config))


def init_states(config, heads: dict, seeds, mesh):
  """(graphdef, state): one model and optimiser per seed, as `state.init_state` creates them
  (same initial weights for a seed) but with the learning rate in the optimiser state, stacked
  on the run axis and born sharded over 'runs'."""
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: _model_and_optimizer(config, heads, 0)))
  init = jax.vmap(lambda seed: nnx.state(_model_and_optimizer(config, heads, seed)))
  state = state_lib.run_once(init, run_sharding(mesh), jnp.asarray(seeds, jnp.int32))
  return graphdef, state


def abstract_state(config, heads: dict):
  """(graphdef, abstract state) of one run, on the first device: what a run's checkpoint
  restores into (`stack_states` then places the runs on the run mesh)."""
  mesh = jax.make_mesh((1, 1), ("data", "model"), (AxisType.Auto,) * 2, devices=jax.devices()[:1])
  with jax.set_mesh(mesh):
    return nnx.get_abstract_model(lambda: _model_and_optimizer(config, heads, 0), mesh)


def stack_states(states: list, mesh):
  """Runs' states (same structure) stacked on a leading run axis, sharded over 'runs'."""
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
  return jax.device_put(stacked, run_sharding(mesh))


def unstack(state, run: int):
  """Run `run`'s state out of a stacked one: in one process, a slice of the shard that holds it,
  on that shard's device. (Indexing the stacked array instead is a program over the whole mesh,
  with an all-reduce; on a CPU's fake devices such collectives deadlocked now and then.)"""
  return jax.tree.map(lambda x: _run_slice(x, run), state)


def _run_slice(x, run: int):
  if not isinstance(x, jax.Array) or not x.is_fully_addressable:
    return x[run]  # a host array; or runs over several processes, which all run this program
  for shard in x.addressable_shards:
    held = range(x.shape[0])[shard.index[0]]
    if run in held:
      return shard.data[held.index(run)]
  raise IndexError(f"run {run} of a stacked array of {x.shape[0]} runs")


def select_runs(take, new, old):
  """Per run, `new` where `take` (R,) is true, else `old` (e.g. the best state so far)."""
  return jax.tree.map(
    lambda a, b: jnp.where(take.reshape(take.shape + (1,) * (a.ndim - 1)), a, b), new, old
  )


def with_learning_rate(state, lr):
  """The state of one run with the injected optimiser's learning rate set to `lr`."""

  def set_lr(path, x):
    names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    return jnp.asarray(lr, x.dtype) if names[-2:] == ["hyperparams", "learning_rate"] else x

  return jax.tree_util.tree_map_with_path(set_lr, state)


def runs_inputs(config, data, parts: list, seeds, total_steps, targets, mesh, configs=None):
  """The per-run arguments of the train steps, sharded over 'runs': training parts (sample
  indices), normalisation statistics, seeds, total steps and `TRACED` values (`run_hyper` of
  each run's config in `configs`, else of `config`).

  `data` is a list of each run's source, carrying the statistics of its own training part
  (`pipeline.with_normalisation`), or one source whose statistics every run shares.
  """
  sources = data if isinstance(data, list | tuple) else [data] * len(parts)
  stats = [on_device.sampling(source, config, targets)[0] for source in sources]
  hyper = [run_hyper(c, targets) for c in configs or [config] * len(parts)]
  runs = {
    "part": on_device.stack_parts(parts, config.batch_size),
    "stats": jax.tree.map(lambda *x: np.stack(x), *stats),
    "seed": np.asarray(seeds, np.int32),
    "total_steps": np.asarray(total_steps, np.int32),
    "hyper": jax.tree.map(lambda *x: np.stack(x), *hyper),
  }
  return jax.device_put(runs, run_sharding(mesh))


def make_train_steps(graphdef, config, mesh, *, steps_per_call: int, flip: bool, bgr: bool):
  """Returns train(state, data, runs, start) -> (state, metrics), over the 'runs' `mesh`.

  Runs `steps_per_call` training steps of every run, numbered `start`, `start + 1`, … (0-based;
  the step numbered s uses learning rate and GRL λ at s, as the single-run trainer's step
  s + 1). `start` is one number for every run or an (R,) vector, one per run (runs resumed
  from different steps). `data` is the dataset from `on_device.put`, `runs` from `runs_inputs`. A run whose
  `total_steps` is reached keeps its state (its metrics say `active` = False). `metrics` holds
  the single-run step's metrics plus `learning_rate`, `grl_lambda` and `active`, each of shape
  (steps_per_call, R). Each run's `TRACED` values come from `runs['hyper']`.
  """
  single = steps.make_train_step(
    graphdef,
    dtype=jnp.dtype(config.dtype),
    alpha=config.loss.alpha,
    beta=config.loss.beta,
    head_weights=dict(config.loss.head_weights),
  )

  def run_step(state, data, run, step):
    batch = on_device.train_batch(
      data, run["part"], run["stats"], run["seed"], step,
      batch_size=config.batch_size, flip=flip, bgr=bgr,
    )  # fmt: skip
    total, hyper = run["total_steps"], run["hyper"]
    lr = optim.learning_rate(config, step, total, peak=hyper["learning_rate"])
    lam = optim.grl_lambda(config.grl, step, total, value=hyper["grl_value"])
    new, metrics = single(with_learning_rate(state, lr), batch, lam, hyper)
    active = step < total
    new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, state)
    return new, metrics | {"learning_rate": lr, "grl_lambda": lam, "active": active}

  def local_steps(state, data, runs, start):
    def body(state, i):
      return jax.vmap(run_step, in_axes=(0, None, 0, 0))(state, data, runs, start + i)

    if steps_per_call == 1:  # no loop: XLA:CPU runs a loop's convolutions several times slower
      state, metrics = body(state, 0)
      return state, jax.tree.map(lambda x: x[:, None], metrics)
    state, metrics = jax.lax.scan(body, state, jnp.arange(steps_per_call))
    return state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)  # runs first

  def train(state, data, runs, start):
    start = jnp.broadcast_to(jnp.asarray(start, jnp.int32), runs["seed"].shape)
    state, metrics = _on_each_device(local_steps, mesh, (0, None, 0, 0))(state, data, runs, start)
    return state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)

  return jax.jit(train, donate_argnums=0)


def steps_per_call(config) -> int:
  """`config.steps_per_call`, where 0 (auto) is 1 on a CPU and 8 elsewhere.

  XLA:CPU runs the convolutions of a loop body several times slower than the same ones
  outside a loop (jax-ml/jax#12868; the quickstart's train step: 2.6 s in a `lax.scan` against
  0.51 s without), so on a CPU each call is one step, with no loop.
  """
  if config.steps_per_call:
    return config.steps_per_call
  return 1 if jax.default_backend() == "cpu" else 8


def _on_each_device(fn, mesh, run_axes):
  """`fn` under `shard_map` over 'runs': each device steps its own runs, with no communication.
  (Left to GSPMD, the stacked state's convolutions gathered their operands at every step.)"""
  specs = tuple(P(RUNS) if axis == 0 else P() for axis in run_axes)
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(RUNS))


def eval_layouts(index_lists: list, global_batch: int):
  """(indices, mask), each (R, num_batches, global_batch): every run's evaluation pass laid
  out as the host's (`pipeline.eval_layout`), runs with fewer batches padded with masked ones."""
  layouts = [pipeline.eval_layout(indices, global_batch) for indices in index_lists]
  num_batches = max(len(indices) for indices, _ in layouts)

  def pad(x):
    return np.pad(x, ((0, num_batches - len(x)), (0, 0)))

  return (
    np.stack([pad(indices) for indices, _ in layouts]).astype(np.int32),
    np.stack([pad(mask) for _, mask in layouts]),
  )


def make_eval_steps(graphdef, config, mesh, *, bgr: bool):
  """Returns evaluate(state, data, stats, indices) -> {target: (R, num_batches, B, C)}: every
  run's model outputs on its evaluation inputs (segment centres, as the host pipeline's)."""
  single = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))

  def run_eval(state, data, stats, indices):
    return jax.lax.map(
      lambda batch: single(state, on_device.eval_batch(data, batch, stats, bgr=bgr)), indices
    )

  local = jax.vmap(run_eval, in_axes=(0, None, 0, 0))
  return jax.jit(_on_each_device(local, mesh, (0, None, 0, 0)))
