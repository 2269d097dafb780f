"""A run (a fold, a seed and, in a sweep, a point): its split, statistics and cadence, where it
stands, what it records.

A `Run` holds where a run stands (its step, its best step and score, its checkpoint managers and
metric writer) and its own config (a sweep point's); both engines (`host_engine`,
`device_engine`) read and advance it.
"""

import dataclasses
import os

from emer_jax import workdir as workdir_lib
from emer_jax.data import pipeline
from emer_jax.data.splits import make_split
from emer_jax.errors import UserError
from emer_jax.train.writers import MetricWriter


class NonFiniteError(UserError, FloatingPointError):
  """A stop the message explains (too high a learning rate, bad data): one line, no traceback."""


def run_keys(config, num_points: int | None = None) -> list[tuple[int, int, int | None]]:
  """(fold, seed, point) of every run of the config, in the order they train and are reported;
  point is None without a sweep, else each of its `num_points` points in turn."""
  points = [None] if num_points is None else range(num_points)
  return [(fold, seed, p) for p in points for seed in config.seeds for fold in config.folds]


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


def steps_of(config, split) -> tuple[int, int]:
  """(total steps, steps per epoch) of a run."""
  steps_per_epoch = max(len(split.train) // config.batch_size, 1)
  total = config.total_steps if config.total_steps > 0 else config.num_epochs * steps_per_epoch
  return total, steps_per_epoch


def run_cadence(config, split) -> Cadence:
  total_steps, steps_per_epoch = steps_of(config, split)
  return Cadence(
    total_steps,
    config.log_every_steps,
    config.eval_every_steps or steps_per_epoch,
    config.checkpoint_every_steps,
    validate=len(split.val) > 0,
  )


@dataclasses.dataclass
class Run:
  """One run (a fold and a seed) and where it stands; both placements' stages update it."""

  fold: int
  seed: int
  point: int | None  # a sweep's point (None: no sweep)
  config: object  # the run's config (a sweep point's)
  split: object
  data: object  # the source carrying the statistics of the run's training part
  cadence: Cadence
  step: int = 0  # training steps done
  best_step: int | None = None  # the validation-best step so far, and its score
  best_score: float | None = None
  latest: object = None  # checkpoint managers
  best: object = None
  writer: MetricWriter | None = None
  values: dict | None = None  # a sweep point's {key: value}

  @property
  def name(self) -> str:
    return workdir_lib.run_name(self.fold, self.seed, self.point)

  @property
  def tags(self) -> dict:
    """What identifies the run's metrics.jsonl lines."""
    return {"fold": self.fold, "seed": self.seed} | (
      {} if self.point is None else {"point": self.point}
    )

  @property
  def training(self) -> bool:
    return self.step < self.cadence.total_steps


def new_run(config, workdir, data, fold, seed, point=None, values=None) -> Run:
  """A run not started or resumed yet (`config`: its own, a sweep point's, whose `values` it
  sets): its split and its training part's statistics (recorded)."""
  split = run_split(config, data, fold)
  path = workdir_lib.normalisation_path(workdir, fold, seed, point)
  data = normalised(data, split.train, config, path)
  return Run(fold, seed, point, config, split, data, run_cadence(config, split), values=values)


def run_result(run, test=None) -> dict:
  """What `runs/<run>.json` records of a run: with its test metrics once tested
  (`run_eval.write_run` adds masked metrics); a sweep's run records its validation first."""
  point = {} if run.point is None else {"point": run.point, "val_score": run.best_score}
  return {
    "fold": run.fold,
    "seed": run.seed,
    **point,
    "selected_step": run.best_step or run.cadence.total_steps,
    "num_train": len(run.split.train),
    "num_val": len(run.split.val),
    "num_test": len(run.split.test),
    **({} if test is None else {"metrics": test}),
    "config": workdir_lib.config_json(run.config),
  }


def normalised(data, train_indices, config, path):
  """`data` with the statistics of the training part, recorded at `path`.

  A resumed run finds them recorded already; if they differ, the data changed under it.
  """
  data = pipeline.with_normalisation(data, train_indices, config)
  if os.path.exists(path):
    recorded = pipeline.load_normalisation(path)
    if recorded.to_dict() != data.normalisation.to_dict():
      raise UserError(
        f"{path} holds other normalisation statistics than this run's training part has now: "
        "the dataset or the split changed since the run started. Use a new workdir."
      )
  os.makedirs(os.path.dirname(path), exist_ok=True)
  workdir_lib.write_json(path, data.normalisation.to_dict(), "the normalisation statistics")
  return data


def check_finite(pending, name: str = ""):
  """Raises NonFiniteError at the first (step, finite loss, finite gradients) that is not."""
  for step, finite_loss, finite_grads in pending:
    bad = [n for n, ok in (("loss", finite_loss), ("gradients", finite_grads)) if not bool(ok)]
    if bad:
      raise NonFiniteError(
        f"{name + ': ' if name else ''}Non-finite {' and '.join(bad)} at step {step}; the "
        "update was skipped and the run stopped. The last good checkpoint is kept."
      )


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
