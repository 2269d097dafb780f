"""Eval mode (`mode='eval'`): tests `init_checkpoint`, else each run's `best` (else `latest`),
writing only `W/eval/`; it never trains, and never writes anything training owns. In a sweep's
workdir the runs are those of the point selected per test fold (`W/sweep.json`)."""

import dataclasses
import os

import jax
import jax.numpy as jnp
from absl import logging

from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.data import pipeline
from emer_jax.errors import UserError
from emer_jax.protocols import head_sizes
from emer_jax.train import run_checkpoints, run_eval, steps
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib


class NothingToEvaluate(UserError):
  pass


@dataclasses.dataclass(frozen=True)
class Sources:
  """What eval mode tests: `checkpoints` (fold, seed) -> (kind, directory, step) of each run's
  checkpoint ({} with `init_checkpoint`), and in a sweep's workdir its `points` and the point
  `selected` per test fold."""

  checkpoints: dict
  points: list | None = None
  selected: dict = dataclasses.field(default_factory=dict)


def sources(config, workdir: str, points=None) -> Sources:
  """The checkpoints eval mode tests (`best`, else `latest`), found before anything is created;
  in a sweep's workdir (`points`, else those it recorded) the selected point's per fold. Raises
  NothingToEvaluate where a run has none, or ConfigChanged where the workdir was started with
  another config or sweep."""
  if config.init_checkpoint:
    return Sources({}, points)
  if points is None:  # a sweep's workdir needs no --sweep to be evaluated
    points = workdir_lib.sweep_points(workdir)
  workdir_lib.check_same_config(workdir, config)
  workdir_lib.check_same_sweep(workdir, points)
  selected = selected_points(workdir, points)
  return Sources(_eval_sources(config, workdir, selected), points, selected)


def selected_points(workdir, points) -> dict:
  """{fold: point} a sweep's workdir selected ({} without a sweep)."""
  if points is None:
    return {}
  record = workdir_lib.read_sweep(workdir)
  if record is None or not record["selected"]:
    raise NothingToEvaluate(
      f"The sweep in {workdir} has not selected its points yet: rerun the training command "
      "to finish it."
    )
  return {int(fold): point for fold, point in record["selected"].items()}


def evaluate(config, workdir: str, found: Sources) -> dict:
  """Tests `init_checkpoint`, else each run's `best` (else its `latest`) as `sources` found them,
  writing `workdir/eval/`. Never trains, and never writes anything training owns.
  """
  sources, points, selected = found.checkpoints, found.points, found.selected
  out_dir = workdir_lib.eval_dir(workdir)
  data, mesh = state_lib.open_data(config)
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
  workdir_lib.write_json(
    workdir_lib.config_path(out_dir), workdir_lib.config_json(config), "the eval config"
  )
  targets = state_lib.run_targets(config)
  base, runs = config, []
  for seed in base.seeds:
    for fold in base.folds:
      point = selected.get(fold)
      config = sweep_lib.point_config(base, points, point)
      graphdef, abstract, state = state_lib.init_state(config, head_sizes(targets), seed, 0, mesh)
      split = runs_lib.run_split(config, data, fold)
      run_data = eval_normalised(config, data, split, workdir, out_dir, fold, seed, point)
      with jax.set_mesh(mesh):
        source = sources.get((fold, seed))
        if source is None:
          state = state_lib.with_init_checkpoint(config, graphdef, state)
          evaluated = os.path.abspath(config.init_checkpoint)
        else:
          state, evaluated = run_checkpoints.load_for_eval(source, abstract, state)
        logging.info("Evaluating %s: %s.", workdir_lib.run_name(fold, seed), evaluated)
        eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
        desc = f"{workdir_lib.run_name(fold, seed)}: evaluating {len(split.test)} test samples"
        outputs, test = run_eval.outputs_and_metrics(
          eval_step, state, run_data, split.test, config, targets, mesh, desc
        )
      result = {
        "fold": fold,
        "seed": seed,
        **({} if point is None else {"point": point}),
        "evaluated": evaluated,
        "num_test": len(split.test),
        "metrics": test,
        "config": workdir_lib.config_json(config),
      }
      if source is not None:  # a run's own checkpoint: its step, and whether training finished
        finished = os.path.exists(workdir_lib.run_json_path(workdir, fold, seed, point))
        result |= {"checkpoint_step": source[2], "finished": finished}
      run_eval.write_run(out_dir, result, data, split.test, targets, outputs)
      runs.append(result)
  sweep = {"points": points, "selected": selected} if selected else None
  return run_eval.write_results(base, out_dir, runs, workdir_lib.config_json(base), sweep)


def eval_normalised(config, data, split, workdir, out_dir, fold, seed, point=None):
  """`data` with the run's recorded training statistics; where the run recorded none (e.g. an
  `init_checkpoint` from elsewhere), those of its training part, recorded under `out_dir`."""
  recorded = workdir_lib.normalisation_path(workdir, fold, seed, point)
  if os.path.exists(recorded):
    return dataclasses.replace(data, normalisation=pipeline.load_normalisation(recorded))
  return runs_lib.normalised(
    data, split.train, config, workdir_lib.normalisation_path(out_dir, fold, seed)
  )


def _eval_sources(config, workdir, selected: dict) -> dict:
  """(fold, seed) -> (kind, directory, step) of what to test: `best`, else `latest`."""
  sources, missing = {}, []
  for seed in config.seeds:
    for fold in config.folds:
      name = workdir_lib.run_name(fold, seed, selected.get(fold))
      run_dir = workdir_lib.checkpoints_dir(workdir, name)
      source = run_checkpoints.selected_checkpoint(run_dir)
      if source is None:
        missing.append(run_dir)
        continue
      sources[(fold, seed)] = source
      if source[0] == "latest":
        logging.warning(
          "%s has no best checkpoint; evaluating its latest (step %d).", name, source[2]
        )
  if missing:
    raise NothingToEvaluate(
      "Nothing to evaluate: no init_checkpoint is set and there is no checkpoint in "
      + ", ".join(f"{d}/best or {d}/latest" for d in missing)
      + ". Train first, or set --config.init_checkpoint=DIR/model."
    )
  return sources
