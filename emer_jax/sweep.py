"""Declaring a hyperparameter sweep: its points, each a {config key: value} dict.

A config file may define `get_hyper(h)`, `h` being this module (big_vision's and scenic's
convention):

  def get_hyper(h):
    return h.product([
      h.sweep('config.learning_rate', [3e-4, 1e-3, 3e-3]),
      h.sweep('config.model.modality_dropout', [0.0, 0.3]),
    ])

or a command gives `--sweep=learning_rate=3e-4,1e-3,3e-3` (repeatable: several form a product,
and they replace the file's `get_hyper`). Keys are relative to the config (`config.` optional).
A sweep's points cross the config's folds × seeds: every (fold, seed, point) is a run, chosen
per test fold on validation (`emer_jax.train.selection`).
"""

import ast
import importlib.util
import itertools

from emer_jax import config_check
from emer_jax.errors import UserError
from emer_jax.protocols import TARGETS

# Keys a point may not set: they define the runs, their splits or how a point is scored.
NOT_SWEPT = (
  "mode",
  "dataset",
  "data_dir",
  "protocol",
  "fold_scheme",
  "folds",
  "seeds",
  "seed",
  "val_fraction",
  "selection_metric",
  "init_checkpoint",
  "parallel_runs",
  "input.placement",
)


def sweep(key: str, values) -> list[dict]:
  """One point per value of `key`."""
  return [{key: value} for value in values]


def product(sweeps) -> list[dict]:
  """Every combination of the sweeps' points (the last sweep varies fastest)."""
  return [_merged(combo) for combo in itertools.product(*sweeps)]


def zipit(sweeps) -> list[dict]:
  """The sweeps' points side by side (they must have as many points each)."""
  sweeps = [list(s) for s in sweeps]
  if len({len(s) for s in sweeps}) > 1:
    raise UserError(f"zipit: the sweeps have {[len(s) for s in sweeps]} points; expected equal")
  return [_merged(combo) for combo in zip(*sweeps, strict=True)]


def _merged(points) -> dict:
  out = {}
  for point in points:
    out |= point
  return out


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def from_flags(flags: list[str]) -> list[dict]:
  """The points of `--sweep=key=v1,v2,…` flags (a product of them)."""
  sweeps = []
  for flag in flags:
    key, sep, values = flag.partition("=")
    if not sep or not key.strip() or not values.strip():
      raise UserError(f"--sweep={flag}: expected --sweep=KEY=VALUE1,VALUE2,…")
    sweeps.append(sweep(key.strip(), [_value(v.strip()) for v in values.split(",")]))
  return product(sweeps)


def from_config_file(spec: str) -> list[dict] | None:
  """The points of the config file's `get_hyper(h)` (`spec` is `path[:arg]`), or None."""
  path = spec.partition(":")[0]
  module_spec = importlib.util.spec_from_file_location("_hyper_config_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  get_hyper = getattr(module, "get_hyper", None)
  if get_hyper is None:
    return None
  import emer_jax.sweep as h

  try:
    return list(get_hyper(h))
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001  (the user's file: any error is theirs)
    raise UserError(f"{path}: get_hyper: {type(e).__name__}: {e}") from None


def points_of(config_spec: str | None, flags: list[str] | None) -> list[dict] | None:
  """The sweep a command trains: its `--sweep` flags, else the config file's `get_hyper`."""
  if flags:
    return from_flags(flags)
  return from_config_file(config_spec) if config_spec else None


def _key(key: str) -> str:
  return key.removeprefix("config.")


def label(point: dict) -> str:
  """'learning_rate=0.001, model.modality_dropout=0.3'."""
  return ", ".join(f"{k}={v}" for k, v in point.items())


def apply(config, point: dict):
  """A copy of `config` with the point's values; a key or value that does not fit is one line."""
  config = config.copy_and_resolve_references()
  for key, value in point.items():
    key = _key(key)
    if key in NOT_SWEPT:
      raise UserError(f"sweep key {key!r}: cannot be swept (it defines the runs or their scoring)")
    *parents, leaf = key.split(".")
    node = config
    if parents == ["loss", "head_weights"]:
      if leaf not in TARGETS or isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(
          f"sweep key {key!r}: expected a target name ({', '.join(TARGETS)}) and a number, "
          f"got {value!r}"
        )
      with config.loss.head_weights.unlocked():
        config.loss.head_weights[leaf] = float(value)
      continue
    message = config_check.unknown_key(config, key)
    if message:
      raise UserError(f"sweep: {message}")
    for part in parents:
      node = node[part]
    old = node[leaf]
    if isinstance(old, tuple) and isinstance(value, list):
      value = tuple(value)
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise UserError(
        f"sweep key {key!r}: value {value!r} does not fit ({type(old).__name__} expected: {e})"
      ) from None
  return config


def point_config(config, points: list[dict] | None, point: int | None):
  """The config a sweep's run of `point` trains with (`config` itself for a run of no sweep)."""
  return config if point is None else apply(config, points[point])


def check(config, points: list[dict]) -> list:
  """The config of every point, each checked (`config_check`); the first bad one is one line."""
  if not points:
    raise UserError("The sweep has no points.")
  relative = [{_key(k): v for k, v in p.items()} for p in points]
  if len({repr(sorted(p.items())) for p in relative}) < len(relative):
    raise UserError("The sweep repeats a point; each point must be distinct.")
  if config.val_fraction <= 0:
    raise UserError(
      f"val_fraction={config.val_fraction}: a sweep chooses its points on validation; "
      "set val_fraction > 0."
    )
  configs = []
  for point in relative:
    configured = apply(config, point)
    errors = config_check.config_errors(configured)
    if errors:
      raise UserError(f"sweep point {label(point)}: " + "; ".join(errors))
    configs.append(configured)
  return configs


def _json_value(value):
  if isinstance(value, tuple | list):
    return [_json_value(v) for v in value]
  return value.item() if hasattr(value, "item") else value  # numpy scalars


def normalised(points: list[dict]) -> list[dict]:
  """Points with keys relative to the config and JSON values (tuples as lists)."""
  return [{_key(k): _json_value(v) for k, v in p.items()} for p in points]
