"""A run's model and optimiser, the mesh they live on, the data opened and where it is placed."""

import os

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import AxisType

from emer_jax import config_check, models
from emer_jax.data import on_device
from emer_jax.data.source import open_source, prepared_builder
from emer_jax.protocols import get_protocol, head_sizes
from emer_jax.train import checkpoint, optim


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


def init_state(config, heads: dict, seed: int, total_steps: int, mesh):
  """(graphdef, abstract state, state) of {'model', 'optimizer'}, created sharded on `mesh`.

  Parameters land where their `nnx.with_partitioning` annotations put them; the abstract state
  carries those shardings, so checkpoints restore onto the same layout. The initialisation and
  dropout streams of a seed are two halves of one key, so no seed's stream is another's.
  """

  def init():
    return model_and_optimizer(config, heads, seed, optim.make_optimizer(config, total_steps))

  with jax.set_mesh(mesh):
    graphdef, abstract = nnx.get_abstract_model(init, mesh)
    state = run_once(lambda: nnx.state(init()), nnx.get_named_sharding(abstract, mesh))
  return graphdef, abstract, state


def run_once(fn, out_shardings, *args):
  """`jax.jit(fn, out_shardings=...)(*args)` for a program that runs once, as initialisation
  does: on a CPU it compiles at XLA's lowest optimisation level, in about a third of the time
  (its results may differ from an optimised compile's in the last bit)."""
  compiled = jax.jit(fn, out_shardings=out_shardings).lower(*args)
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return compiled.compile(compiler_options=options)(*args)


def model_and_optimizer(config, heads: dict, seed, tx) -> dict:
  """{'model', 'optimizer'} of a run's seed (both engines build their runs with it), `tx` the
  optax transformation. The initialisation and dropout streams are `stream_keys(seed)`."""
  params, dropout = stream_keys(seed)
  model = models.build_model(
    config.model,
    heads=heads,
    rngs=nnx.Rngs(params=params, dropout=dropout),
    dtype=jnp.dtype(config.dtype),
  )
  return {"model": model, "optimizer": nnx.Optimizer(model, tx, wrt=nnx.Param)}


def stream_keys(seed: int):
  """(initialisation key, dropout key) of a run's seed: two halves of one key."""
  params, dropout = jax.random.split(jax.random.key(seed))
  return params, dropout


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


def with_init_checkpoint(config, graphdef, state):
  trained = nnx.merge(graphdef, state)
  checkpoint.restore_model(config.init_checkpoint, trained["model"])
  return nnx.state(trained)


def open_data(config):
  mesh = make_mesh(config)
  if jax.process_index() == 0:  # builds a missing synthetic dataset once
    prepared_builder(config.dataset, config.data_dir)
  multihost_utils.sync_global_devices("dataset ready")
  data = open_source(config.dataset, config.data_dir, prepare=False, cache=config.input.cache)
  return data, mesh


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
