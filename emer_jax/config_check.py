"""Checks a whole config before anything runs; every error names the key, its value and what is
allowed.

`check(config)` raises `ConfigError` listing every problem at once. `unknown_key(config, key)`
is the one-line message for a misspelt `--config.key`. `flat(config)` and `differences(old,
new)` compare the config a workdir was started with against a rerun's (`MAY_DIFFER` lists the
keys that change nothing trained, split or reported).
"""

import difflib
import math
import os

import numpy as np

from emer_jax.errors import UserError  # config_check.UserError: where it lived before
from emer_jax.models.config import VARIANTS
from emer_jax.protocols import PROTOCOLS, STUDY, TARGETS, is_study, study_labels

DTYPES = ("float32", "bfloat16", "float16")
PLACEMENTS = ("auto", "device", "host")  # input.placement

# Keys a rerun may change: how fast or where it runs, how often it logs or checkpoints, never
# what it trains, splits or reports. Prefixes end with '.'.
MAY_DIFFER = (
  "mode",
  "data_dir",
  "log_every_steps",
  "checkpoint_every_steps",
  "keep_checkpoints",
  "eval_batch_size",
  "input.cache",
  "input.num_threads",
  "input.prefetch",
  "input.workers",
  "input.placement",  # each run's checkpoints record theirs and refuse the other
  "parallel_runs",
  "steps_per_call",
  "mesh.",
)


class ConfigError(UserError, ValueError):
  pass


def _positive_int(value) -> bool:
  return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0


def _non_negative_int(value) -> bool:
  return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0


def _non_negative(value) -> bool:
  return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _sequence_errors(key, value, allowed) -> list[str]:
  if not isinstance(value, tuple | list) or not value:
    return [f"{key}={value!r}: must be a non-empty tuple, e.g. (1,)"]
  errors = []
  repeats = sorted({v for v in value if list(value).count(v) > 1})
  if repeats:
    errors.append(f"{key}={tuple(value)!r}: repeats {repeats}; each run must be distinct")
  bad = [v for v in value if not allowed(v)]
  if bad:
    errors.append(f"{key}={tuple(value)!r}: {bad} not allowed")
  return errors


def config_errors(c) -> list[str]:
  """Every problem of a training config, one string each."""
  errors = []

  def need(ok, key, allowed):
    if not ok:
      errors.append(f"{key}={_get(c, key)!r}: {allowed}")

  need(c.mode in ("train", "eval"), "mode", "expected 'train' or 'eval'")
  study = is_study(c.protocol)
  need(
    c.protocol in PROTOCOLS or (study and study_labels(c.protocol)),
    "protocol",
    f"expected one of {sorted(PROTOCOLS)}, or '{STUDY}<label>[,<label>…]' naming labels of the "
    "dataset (each once)",
  )
  unknown = [t for t in c.extra_targets if t not in TARGETS]
  need(
    study or not unknown,  # a study's labels are checked against its dataset
    "extra_targets",
    f"unknown {unknown}; expected names from {sorted(TARGETS)}",
  )
  need(
    c.fold_scheme in ("reference", "subject"), "fold_scheme", "expected 'reference' or 'subject'"
  )
  errors += _sequence_errors("folds", c.folds, lambda f: _positive_int(f) and (study or f <= 5))
  errors += _sequence_errors("seeds", c.seeds, lambda s: isinstance(s, int) and s >= 0)
  need(
    isinstance(c.val_fraction, int | float) and 0 <= c.val_fraction < 1,
    "val_fraction",
    "expected 0 ≤ val_fraction < 1 (the share of training subjects held out)",
  )
  need(c.dtype in DTYPES, "dtype", f"expected one of {DTYPES}")
  need(c.model.variant in VARIANTS, "model.variant", f"expected one of {VARIANTS}")
  for key in ("batch_size", "eval_batch_size", "log_every_steps", "checkpoint_every_steps"):
    need(_positive_int(_get(c, key)), key, "expected a positive integer")
  need(_positive_int(c.keep_checkpoints), "keep_checkpoints", "expected a positive integer")
  for key in ("total_steps", "eval_every_steps", "warmup_steps"):
    need(_non_negative_int(_get(c, key)), key, "expected an integer ≥ 0")
  if c.total_steps == 0 and c.mode == "train":
    need(_positive_int(c.num_epochs), "num_epochs", "expected a positive integer")
  lr = c.learning_rate
  need(
    isinstance(lr, int | float) and math.isfinite(lr) and lr > 0,
    "learning_rate",
    "expected a finite number > 0",
  )
  for key in ("weight_decay", "loss.alpha", "loss.beta", "grl.value"):
    value = _get(c, key)
    need(_non_negative(value) and math.isfinite(value), key, "expected a finite number ≥ 0")
  unknown = [t for t in c.loss.head_weights if t not in TARGETS]
  need(study or not unknown, "loss.head_weights", f"unknown targets {unknown}")
  need(c.grl.schedule in ("constant", "dann"), "grl.schedule", "expected 'constant' or 'dann'")
  need(c.input.channel_order in ("rgb", "bgr"), "input.channel_order", "expected 'rgb' or 'bgr'")
  for key in ("input.num_frames", "input.num_eye_rows", "input.num_threads"):
    need(_positive_int(_get(c, key)), key, "expected a positive integer")
  for key in ("input.prefetch", "input.workers"):
    need(_non_negative_int(_get(c, key)), key, "expected an integer ≥ 0")
  need(c.input.placement in PLACEMENTS, "input.placement", f"expected one of {PLACEMENTS}")
  need(
    _non_negative_int(c.steps_per_call),
    "steps_per_call",
    "expected an integer ≥ 0 (0: 1 on a CPU, 8 elsewhere)",
  )
  parallel = c.parallel_runs
  need(
    _non_negative_int(parallel),
    "parallel_runs",
    "expected an integer ≥ 0 (0: all runs together, 1: one at a time)",
  )
  if c.input.placement == "host" and isinstance(parallel, int) and parallel > 1:
    errors.append(
      f"parallel_runs={parallel} with input.placement='host': runs train together only with "
      "the data on the devices; set input.placement='device' (or 'auto'), or parallel_runs=1"
    )
  if c.input.placement == "device" and c.model.eye_columns != "all":
    errors.append(
      f"input.placement='device' with model.eye_columns={c.model.eye_columns!r}: the data on the "
      "devices serves the 'all' columns only; set input.placement='host' (or 'auto')"
    )
  for key in ("mesh.data", "mesh.model"):
    need(
      _get(c, key) == -1 or _positive_int(_get(c, key)), key, "expected -1 or a positive integer"
    )
  if c.init_checkpoint:
    errors += _init_checkpoint_errors(c.init_checkpoint)
  if "benchmark" in c:
    need(_positive_int(c.benchmark.steps), "benchmark.steps", "expected a positive integer")
    for key in ("benchmark.warmup_steps", "benchmark.input_batches", "benchmark.end_to_end_steps"):
      need(_non_negative_int(_get(c, key)), key, "expected an integer ≥ 0")
  return errors


def _init_checkpoint_errors(path) -> list[str]:
  from emer_jax.train.checkpoint import NOT_ORBAX, ORBAX_METADATA  # noqa: PLC0415  (Orbax)

  key = f"init_checkpoint={path!r}"
  if path.endswith((".pth", ".pt", ".npz")):
    return [
      f"{key}: a PyTorch/NumPy state dict, not an Orbax checkpoint; convert it first with "
      f"python -m emer_jax.convert --checkpoint={path} --output=DIR, then pass DIR/model"
    ]
  if not os.path.isdir(path):
    return [f"{key}: no such folder (expected an Orbax model checkpoint, e.g. DIR/model)"]
  if not os.path.isfile(os.path.join(path, ORBAX_METADATA)):
    return [f"{key}: {NOT_ORBAX}"]
  return []


def check(config) -> None:
  """Raises ConfigError naming every bad key of `config`."""
  errors = config_errors(config)
  if errors:
    raise ConfigError(_joined(errors))


def _joined(errors) -> str:
  return "Invalid config: " + "; ".join(errors) + "."


def _get(config, key: str):
  for part in key.split("."):
    config = config[part]
  return config


def unknown_key(config, key: str) -> str | None:
  """The message for `--config.<key>` when `key` is not in `config`, else None."""
  node, path = config, []
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node:
      siblings = list(node.keys()) if hasattr(node, "keys") else []
      near = difflib.get_close_matches(part, siblings, n=3, cutoff=0.6)
      prefix = ".".join(path + [""])
      hint = (
        "did you mean " + " or ".join(prefix + n for n in near) + "?"
        if near
        else f"{prefix or 'the config'} has {', '.join(sorted(siblings))}"
      )
      return f"Unknown config key {key!r}: {hint}"
    node, path = node[part], path + [part]
  return None


def flat(config) -> dict:
  """{'model.feature_dim': 128, …}: a config (or its JSON dict) as dotted keys, tuples as lists."""
  import json

  if hasattr(config, "to_json_best_effort"):
    config = json.loads(config.to_json_best_effort())
  out = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict) and v:
        walk(v, f"{prefix}{k}.")
      else:
        out[prefix + k] = json.loads(json.dumps(v))

  walk(config, "")
  return out


def may_differ(key: str) -> bool:
  return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_DIFFER)


def differences(old: dict, new: dict) -> list[tuple[str, object, object]]:
  """(key, old value, new value) of the flat configs' differing keys that matter."""
  absent = "<absent>"
  keys = sorted(set(old) | set(new))
  return [
    (k, old.get(k, absent), new.get(k, absent))
    for k in keys
    if not may_differ(k) and old.get(k, absent) != new.get(k, absent)
  ]
