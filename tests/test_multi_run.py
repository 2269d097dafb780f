"""Many runs in one program on 8 CPU devices: R runs trained together equal the same runs
trained alone; k steps in one call equal k calls of one step; no program holds a collective."""

import functools
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType

from emer_jax.config import base_config
from emer_jax.data import on_device
from emer_jax.train import device_engine, multi_run, optim, steps
from emer_jax.train import state as state_lib
from tests.model_testing import tiny_config
from tests.test_on_device import fake_source
from tests.test_scale import _collectives_in_loops

COLLECTIVE = re.compile(r"\b(all-reduce|all-gather|all-to-all|reduce-scatter|collective-permute)\(")

TARGETS = ("er_emotion",)
HEADS = {"er_emotion": 7}
# Four runs: their own training parts (of different sizes), seeds and lengths.
PARTS = [np.arange(0, 10), np.arange(5, 17), np.arange(8, 17), np.arange(2, 13)]
SEEDS = [0, 1, 2, 0]
TOTAL_STEPS = [6, 6, 4, 6]


def _config():
  c = base_config()
  c.model = tiny_config()
  c.input.num_frames = 2
  c.input.num_eye_rows = 4
  c.batch_size = 4
  c.learning_rate = 1e-2
  c.warmup_steps = 2
  c.grl.schedule = "dann"
  return c


@pytest.fixture(scope="module")
def setup():
  config = _config()
  data = fake_source(17, num_frames=5, face_size=(16, 16), map_size=16)
  arrays = on_device.decode(data, TARGETS, num_frames=2, num_eye_rows=4)
  stats, options = on_device.sampling(data, config, TARGETS)
  mesh = multi_run.run_mesh(len(PARTS))
  runs = multi_run.runs_inputs(config, data, PARTS, SEEDS, TOTAL_STEPS, TARGETS, mesh)
  devices = on_device.put(arrays, multi_run.replicated(mesh))
  train = functools.cache(
    lambda k: multi_run.make_train_steps(graphdef, config, mesh, steps_per_call=k, **options)
  )

  graphdef, initial = multi_run.init_states(config, HEADS, SEEDS, mesh)

  def fresh():  # the train steps donate their state
    return jax.tree.map(jnp.copy, initial)

  return types.SimpleNamespace(**{k: v for k, v in locals().items() if k != "data"})


def _losses(s, k, total=6):
  """Per-step losses (total, R), final state and last metrics of `total` steps, k per call."""
  state, losses = s.fresh(), []
  for start in range(0, total, k):
    state, metrics = s.train(k)(state, s.devices, s.runs, jnp.int32(start))
    losses.append(np.asarray(metrics["loss/total"]))
  return np.concatenate(losses), state, metrics


def _leaves(state):
  """The state's arrays, RNG keys as their data."""
  is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
  return [np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in jax.tree.leaves(state)]


def test_runs_trained_together_equal_runs_trained_alone(setup):
  s = setup
  assert s.mesh.shape == {"runs": 4}
  together, state, metrics = _losses(s, 3)
  assert together.shape == (6, 4)
  assert {x.sharding.spec[0] for x in jax.tree.leaves(state)} == {"runs"}
  np.testing.assert_array_equal(metrics["active"][:, 2], [True, False, False])  # steps 3, 4, 5 of 4
  single_mesh = jax.make_mesh((1, 1), ("data", "model"), (AxisType.Auto,) * 2,
                              devices=jax.devices()[:1])  # fmt: skip
  one = jax.device_put(s.arrays, jax.devices()[0])
  batch_fn = jax.jit(functools.partial(on_device.train_batch, batch_size=4, **s.options))

  @functools.cache
  def step_of(total):  # the optimiser's schedule is part of the graph: one step per length
    graphdef, _, _ = state_lib.init_state(s.config, HEADS, 0, total, single_mesh)
    return steps.make_train_step(graphdef, dtype=jnp.float32, alpha=0.01, beta=0.01,
                                 head_weights={})  # fmt: skip

  for r, (part, seed, total) in enumerate(zip(PARTS, SEEDS, TOTAL_STEPS, strict=True)):
    _, _, alone = state_lib.init_state(s.config, HEADS, seed, total, single_mesh)
    step = step_of(total)
    losses = []
    with jax.set_mesh(single_mesh):
      for i in range(total):
        batch = batch_fn(one, on_device.train_part(part, 4), s.stats, seed, i)
        alone, m = step(alone, batch, optim.grl_lambda(s.config.grl, i, total))
        losses.append(float(m["loss/total"]))
    np.testing.assert_allclose(together[:total, r], losses, rtol=1e-3, err_msg=f"run {r}")
    assert len(set(losses)) == total  # the runs did train
  assert not np.allclose(together[:, 0], together[:, 3])  # same seed, other data


def test_steps_in_one_call_equal_single_steps(setup):
  s = setup
  scanned, state_k, _ = _losses(s, 3)
  stepped, state_1, _ = _losses(s, 1)
  np.testing.assert_allclose(scanned, stepped, rtol=1e-6)
  # a resume is the state brought back to the host and placed again: bit-exact
  state, first = s.train(3)(s.fresh(), s.devices, s.runs, jnp.int32(0))
  state = multi_run.stack_states([multi_run.unstack(jax.device_get(state), r) for r in range(4)],
                                 s.mesh)  # fmt: skip
  resumed, second = s.train(3)(state, s.devices, s.runs, jnp.int32(3))
  np.testing.assert_array_equal(
    np.concatenate([first["loss/total"], second["loss/total"]]), scanned
  )
  for a, b in zip(_leaves(resumed), _leaves(state_k), strict=True):
    np.testing.assert_array_equal(a, b)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state_k)[0]]
  for path, a, b in zip(paths, _leaves(state_k), _leaves(state_1), strict=True):
    # The keys' LayerNorm bias moves every key's logit of a query alike, which the softmax
    # undoes: its gradient is rounding noise, and Adam makes noise of any size a full step.
    if "'norm_k']['bias']" not in path:
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=path)


def test_no_program_of_the_runs_holds_a_collective(setup):
  # Runs never talk to each other. A collective would also be a hazard on fake CPU devices:
  # programs dispatched back to back can meet in different collectives and deadlock.
  s = setup
  hlo = s.train(3).lower(s.fresh(), s.devices, s.runs, jnp.int32(0)).compile().as_text()
  assert " while(" in hlo  # the scan over steps (and the LSTMs' time loops)
  assert _collectives_in_loops(hlo) == []
  indices, _ = multi_run.eval_layouts(PARTS, 4)
  indices = jax.device_put(indices, multi_run.run_sharding(s.mesh))
  evaluate = multi_run.make_eval_steps(s.graphdef, s.config, s.mesh, bgr=s.options["bgr"])
  state = s.fresh()
  take = np.arange(len(PARTS)) % 2 == 0
  programs = {
    "train": hlo,
    "train, one step": s.train(1).lower(state, s.devices, s.runs, jnp.int32(0)),
    "evaluate": evaluate.lower(state, s.devices, s.runs["stats"], indices),
    "select runs": device_engine._select_runs.lower(take, state["model"], state["model"]),
    "copy": device_engine._copy.lower(state["model"]),
  }
  for name, program in programs.items():
    text = program if isinstance(program, str) else program.compile().as_text()
    assert not COLLECTIVE.search(text), f"{name}: {COLLECTIVE.search(text)[0]}"
  # One step per call runs outside any step loop (XLA:CPU runs a loop's convolutions slowly),
  # and that is what `steps_per_call=0` gives on a CPU.
  one = s.train(1).lower(s.fresh(), s.devices, s.runs, jnp.int32(0)).compile().as_text()
  assert one.count(" while(") < hlo.count(" while(")
  assert multi_run.steps_per_call(s.config) == 1 and s.config.steps_per_call == 0


def test_evaluation_of_every_run_and_best_state_selection(setup):
  s = setup
  state = s.fresh()
  evaluate = multi_run.make_eval_steps(s.graphdef, s.config, s.mesh, bgr=s.options["bgr"])
  val = [np.arange(11, 17), np.arange(0, 3), np.arange(3, 12), np.arange(1, 2)]
  indices, mask = multi_run.eval_layouts(val, 4)
  assert indices.shape == (4, 3, 4) and mask.sum() == 6 + 3 + 9 + 1
  placed = jax.device_put((s.runs["stats"], indices), multi_run.run_sharding(s.mesh))
  outputs = evaluate(state, s.devices, *placed)["er_emotion"]
  assert outputs.shape == (4, 3, 4, 7)
  # run 1's outputs are those of its model alone on the host pipeline's inputs
  alone = steps.make_eval_step(s.graphdef, dtype=jnp.float32)
  batch = on_device.eval_batch(jax.device_put(s.arrays, jax.devices()[0]), indices[1, 0], s.stats,
                               bgr=False)  # fmt: skip
  expected = alone(jax.device_get(multi_run.unstack(state, 1)), batch)["er_emotion"]
  np.testing.assert_allclose(outputs[1, 0], expected, rtol=1e-5, atol=1e-6)
  take = jnp.array([True, False, True, False])
  trained, _ = s.train(1)(s.fresh(), s.devices, s.runs, jnp.int32(0))
  best = multi_run.select_runs(take, trained, state)
  for new, old, chosen in zip(*map(_leaves, (trained, state, best)), strict=True):
    for r in range(4):
      np.testing.assert_array_equal(chosen[r], (new if take[r] else old)[r])


@pytest.mark.parametrize("devices", [8, 2])
def test_a_runs_state_is_taken_out_on_the_device_that_holds_it(setup, devices):
  # No program over the mesh: indexing the stacked state all-reduced over it, and on fake CPU
  # devices such programs, dispatched back to back, deadlocked now and then (a sweep's resume).
  mesh = multi_run.run_mesh(len(PARTS), jax.devices()[:devices])
  state = multi_run.stack_states(jax.device_get([multi_run.unstack(setup.initial, r) for r in range(4)]), mesh)  # fmt: skip
  stacked = jax.tree.leaves(state)
  for r in range(len(PARTS)):
    holder = mesh.devices.flat[r * mesh.size // len(PARTS)]
    leaves = jax.tree.leaves(multi_run.unstack(state, r))
    for leaf, whole in zip(leaves, stacked, strict=True):
      assert leaf.devices() == {holder}
      np.testing.assert_array_equal(_data(leaf), _data(whole)[r])


def _data(x):
  return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)  # fmt: skip
