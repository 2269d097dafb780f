"""The host engine: a group of one run, its batches from a grain pipeline on the host.

Used where the data stays on the host (`state.resolve_placement`): several processes, a CPU, data
too large for the devices. A run's `latest` checkpoint holds the grain iterator (`data`) beside
its state; its `best` weights are read back from disk for the test. See `run_loop` for the loop
it serves.
"""

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from emer_jax import logs
from emer_jax.data import pipeline
from emer_jax.protocols import head_sizes
from emer_jax.train import optim, run_checkpoints, run_eval, steps
from emer_jax.train import state as state_lib


def engines(config, mesh):
  """(group size, engine_for) of the host placement: one run per group."""
  return 1, lambda runs, stack: HostEngine(runs[0].config, runs[0], mesh, stack)


class HostEngine:
  """One run's model on `mesh` (`config`: the run's own), stepped one batch at a time."""

  steps_per_call = 1
  compiling = "compiling the train step (the bar starts after its first step)"

  def __init__(self, config, run, mesh, stack):
    self.config, self.run, self.mesh = config, run, mesh
    self.targets = state_lib.run_targets(config)
    total_steps = run.cadence.total_steps
    logs.phase(f"{run.name}: building the model")
    graphdef, self.abstract, fresh = state_lib.init_state(
      config, head_sizes(self.targets), run.seed, total_steps, mesh
    )
    stack.enter_context(jax.set_mesh(mesh))
    self.batches = iter(
      pipeline.train_dataset(run.data, run.split.train, config, self.targets, seed=run.seed)
    )
    items = {"data": grain.checkpoint.CheckpointRestore(self.batches)}
    restored = run_checkpoints.resume(
      config, run, graphdef, self.abstract, items, "host", lambda: fresh
    )
    self.state = fresh if restored is None else restored
    self.eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
    self.train_step = steps.make_train_step(
      graphdef,
      dtype=jnp.dtype(config.dtype),
      alpha=config.loss.alpha,
      beta=config.loss.beta,
      head_weights=dict(config.loss.head_weights),
    )
    self.schedule = optim.learning_rate_schedule(config, total_steps)

  def advance(self, k: int) -> list:
    finite, step, total_steps = [], self.run.step, self.run.cadence.total_steps
    for _ in range(k):
      batch = pipeline.to_global(next(self.batches), self.mesh)
      lam = optim.grl_lambda(self.config.grl, step, total_steps)
      self.state, metrics = self.train_step(self.state, batch, lam)
      finite.append((metrics["finite/loss"], metrics["finite/grads"]))
      step += 1
    last = lambda: metrics | {"learning_rate": self.schedule(step - 1), "grl_lambda": lam}  # noqa: E731
    return [(finite, last)]

  def _predict(self, state, part: str, desc=None) -> dict:
    run = self.run
    indices = getattr(run.split, part)
    return run_eval.predict(
      self.eval_step, state, run.data, indices, self.config, self.targets, self.mesh, desc
    )

  def validate(self) -> list:
    return [self._predict(self.state, "val")]

  def save_best(self, improved: dict) -> None:
    (score,) = improved.values()
    run_checkpoints.save_best(self.run.best, self.run.step, self.state, score)

  def save_latest(self, r: int) -> None:
    self.run.latest.save(
      self.run.step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(self.state),
        data=grain.checkpoint.CheckpointSave(self.batches),
      ),
    )

  def test(self) -> list:
    """The outputs of the validation-best weights (the last ones when nothing was selected)."""
    run, state = self.run, self.state
    if run.best_step is not None:
      model = run_checkpoints.restore_best_model(run.best, run.best_step, self.abstract)
      state = nnx.State({"model": model, "optimizer": state["optimizer"]})
    desc = f"{run.name}: evaluating {len(run.split.test)} test samples"
    return [self._predict(state, "test", desc)]
