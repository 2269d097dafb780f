"""A run's checkpoints: `latest` (resume) and `best` (the validation selection).

`resume` opens a run: `restore_latest` reads the newest readable `latest`, moving damaged ones
aside and refusing one written by another model or with the other `input.placement`;
`save_best`/`recorded_best` keep the selection across a kill; `selected_checkpoint` finds the
weights a run is tested with and `load_for_eval` reads them (eval mode, robustness).
"""

import contextlib
import datetime
import os
import shutil

import jax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils

from emer_jax import paths
from emer_jax.errors import UserError
from emer_jax.train import checkpoint
from emer_jax.train import state as state_lib


class _Manager(ocp.CheckpointManager):
  """A CheckpointManager whose failed write (a full disk, no permission) is one line naming the
  checkpoint (`paths.writing`) and leaves no temporary folder of the writes that did not finish
  (`<step>.orbax-checkpoint-tmp-*`); finished checkpoints are never touched."""

  def __init__(self, directory, what: str, **options):
    super().__init__(directory, options=ocp.CheckpointManagerOptions(**options))
    # The step of the latest save: each save first waits for the one before, so an error
    # surfacing later (asynchronous writes) is that save's.
    self._what, self._saving = what, None

  @contextlib.contextmanager
  def _writing(self):
    directory = os.fspath(self.directory)
    saving = self._saving is not None
    try:
      with paths.writing(
        os.path.join(directory, str(self._saving)) if saving else directory, self._what
      ):
        yield
    except paths.PathError:
      if saving and jax.process_index() == 0:
        for name in os.listdir(directory):
          if name.startswith(f"{self._saving}{TMP_SUFFIX}"):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
      raise

  def save(self, step, *args, **kwargs):
    self.wait_until_finished()  # an error of the previous save is named as its own
    self._saving = step
    with self._writing():
      return super().save(step, *args, **kwargs)

  def wait_until_finished(self):
    with self._writing():
      super().wait_until_finished()

  def close(self):
    with self._writing():
      super().close()


TMP_SUFFIX = ".orbax-checkpoint-tmp"  # Orbax writes a step there, then renames it


class Managers:
  """The run's `latest` (full state, for resuming) and `best` (weights and score) managers.

  Closing waits for asynchronous saves, also when training fails or is interrupted.
  """

  def __init__(self, run_dir, keep: int):
    options = dict(create=True, enable_async_checkpointing=True)
    self.latest = _Manager(
      os.path.join(run_dir, "latest"), "the latest checkpoint", max_to_keep=keep, **options
    )
    self.best = _Manager(
      os.path.join(run_dir, "best"), "the best checkpoint", max_to_keep=1, **options
    )

  def __enter__(self):
    return self.latest, self.best

  def __exit__(self, *exc):
    self.latest.close()
    self.best.close()


class PlacementMismatch(UserError):
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


def recorded_best(best) -> tuple[int | None, float | None]:
  """(step, score) of the best checkpoint on disk: the selection survives a kill and resume."""
  for step in sorted(best.all_steps(), reverse=True):
    try:
      meta = best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
      return step, meta["score"]
    except Exception as e:  # noqa: BLE001
      _move_aside(best, step, e)
  return None, None


def save_best(best, step, state, score):
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


def restore_best_model(best, step, abstract):
  restored = best.restore(
    step, args=ocp.args.Composite(model=ocp.args.StandardRestore(abstract["model"]))
  )
  return restored.model


def selected_checkpoint(run_dir: str, step: int | None = None) -> tuple[str, str, int] | None:
  """(kind, directory, step) of the weights a run is tested with: its `best` checkpoint, else
  its `latest` (a run without validation, or stopped before its first); the newest, or the one
  of `step`. None where neither holds one."""
  for kind in ("best", "latest"):
    directory = os.path.join(run_dir, kind)
    found = ocp.utils.checkpoint_steps(directory) if os.path.isdir(directory) else []
    found = [s for s in found if step is None or s == step]
    if found:
      return kind, directory, max(found)
  return None


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


def resume(config, run, graphdef, abstract, items: dict, placement: str, fresh, at_most=None):
  """The state a run trains on: its newest readable `latest` (`restore_latest`; sets its step),
  else `init_checkpoint`'s weights in `fresh()`, else None (the fresh state); sets the best step
  and score recorded on disk, so the selection survives a kill."""
  run.step, restored = restore_latest(run.latest, abstract, items, placement, at_most)
  run.best_step, run.best_score = recorded_best(run.best)
  if restored is not None:
    logging.info("Resuming %s from step %d.", run.name, run.step)
    return restored
  if config.init_checkpoint:
    return state_lib.with_init_checkpoint(config, graphdef, fresh())
  return None
