"""A workdir W: every path and record under it, one writer at a time, the config it started with.

Layout:
  .lock                        held by the one process writing here (`locked`)
  config.json                  the config the workdir was started with (a rerun must match it)
  metrics.jsonl                one line per logged step: step, fold, seed, train/…, val/…
  tensorboard/fold{k}_seed{s}  TensorBoard events (a sweep's runs: fold{k}_seed{s}_point{p})
  checkpoints/fold{k}_seed{s}/latest      full training state and, by placement, the grain
                                          iterator (`data`) or a `placement` record (resume)
  checkpoints/fold{k}_seed{s}/best        model weights chosen on validation, with their score
  checkpoints/fold{k}_seed{s}/unreadable  damaged checkpoints moved aside on resume
  runs/fold{k}_seed{s}.json    a finished run's test metrics and config (a rerun skips it)
  runs/fold{k}_seed{s}.normalisation.json   eye/gaze mean and std of the run's training part
  results.json                 every run's test metrics, their mean and std, the config
  results.csv, results.md      the same as tables (emer_jax.evaluation.report)
  per_class_recall.csv         per run and classification target, one column per class
  predictions_fold{k}_seed{s}.csv   every test sample's labels and outputs
  plots/<name>.png             confusion matrices, recall, scatter plots, learning curves
  sweep.json, sweep.md, sweep.csv, plots/sweep.png   a sweep's points, every run's validation
                               score and the point selected per test fold (`train.selection`)
  eval/                        what `mode='eval'` writes (the same files); training never reads it
  robustness/                  what `emer_jax.evaluation.robustness` writes

`open_workdir` holds `W/.lock` (process 0 of a job; a second process stops at once naming the
holder), compares the config against `W/config.json` and writes that file only once the config
is accepted. A rerun whose config differs in a key outside `config_check.MAY_DIFFER` stops before
writing anything; `restart=True` moves the old contents aside to `W/before-restart-<time>/`.
"""

import contextlib
import datetime
import json
import os
import pathlib
import re

import jax
import numpy as np

from emer_jax import config as config_lib
from emer_jax import config_check, paths
from emer_jax.errors import UserError
from tfds_emer import locks

CONFIG = "config.json"
LOCK = ".lock"
EVAL_DIR = "eval"


class ConfigChanged(UserError):
  pass


def run_name(fold: int, seed: int, point: int | None = None) -> str:
  """'fold1_seed0', or 'fold1_seed0_point2' for a run of a sweep's point 2."""
  return f"fold{fold}_seed{seed}" + ("" if point is None else f"_point{point}")


def parse_run_name(name: str) -> tuple[int, int, int | None]:
  """(fold, seed, point) of a `run_name`."""
  fold, seed, point = re.fullmatch(r"fold(\d+)_seed(\d+)(?:_point(\d+))?", name).groups()
  return int(fold), int(seed), None if point is None else int(point)


def _json_safe(obj):
  """NaN (e.g. the std of a single run) becomes null, so the files are strict JSON."""
  if isinstance(obj, dict):
    return {k: _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, list | tuple):
    return [_json_safe(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def write_json(path: str, obj, what: str = "a record"):
  """Writes atomically (a kill never leaves half a file), from process 0 only; a write error
  (a full disk, no permission) is one line naming `what` and the path, leaving no `.tmp`."""
  if jax.process_index():
    return
  tmp = path + ".tmp"
  try:
    with paths.writing(path, what):
      with open(tmp, "w") as f:
        json.dump(_json_safe(obj), f, indent=2, allow_nan=False)
      os.replace(tmp, path)
  except paths.PathError:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def config_json(config) -> dict:
  return json.loads(config.to_json_best_effort())


def under(workdir: str, *parts: str) -> str:
  """An absolute path under the workdir (Orbax, for one, refuses relative ones)."""
  return os.path.join(os.path.abspath(workdir), *parts)


def runs_dir(out_dir: str) -> str:
  return under(out_dir, "runs")


def run_json_path(out_dir, fold, seed, point=None) -> str:
  return under(out_dir, "runs", f"{run_name(fold, seed, point)}.json")


def normalisation_path(out_dir: str, fold: int, seed: int, point=None) -> str:
  """Where a run records its statistics: `<out_dir>/runs/fold{k}_seed{s}.normalisation.json`."""
  return under(out_dir, "runs", f"{run_name(fold, seed, point)}.normalisation.json")


def checkpoints_dir(workdir: str, run: str = "") -> str:
  """`W/checkpoints/<run>`: the run's `latest`, `best` and `unreadable` folders (without a run:
  `W/checkpoints/`)."""
  return under(workdir, "checkpoints", run)


def results_path(out_dir: str) -> str:
  return under(out_dir, "results.json")


def metrics_path(workdir: str) -> str:
  return under(workdir, "metrics.jsonl")


def tensorboard_dir(workdir: str, run: str) -> str:
  return under(workdir, "tensorboard", run)


def results_table_paths(out_dir: str) -> tuple[str, str]:
  """`results.csv` and `results.md`."""
  return under(out_dir, "results.csv"), under(out_dir, "results.md")


def per_class_recall_path(out_dir: str) -> str:
  return under(out_dir, "per_class_recall.csv")


def plots_dir(out_dir: str) -> str:
  return under(out_dir, "plots")


def plot_path(out_dir: str, name: str) -> str:
  """`plots/<name>.png`, e.g. name 'confusion_er_emotion_fold1_seed0'."""
  return under(out_dir, "plots", f"{name}.png")


def predictions_path(out_dir, fold: int, seed: int) -> pathlib.Path:
  return pathlib.Path(under(out_dir, f"predictions_{run_name(fold, seed)}.csv"))


def robustness_dir(workdir: str) -> str:
  """`W/robustness`: what `emer_jax.evaluation.robustness` writes."""
  return under(workdir, "robustness")


def config_path(out_dir: str) -> str:
  return under(out_dir, CONFIG)


def sweep_path(out_dir: str, suffix: str = "json") -> str:
  """`W/sweep.json` (also `.md`, `.csv`): a sweep's points, runs and selection."""
  return under(out_dir, f"sweep.{suffix}")


def sweep_plot_path(out_dir: str) -> str:
  return under(out_dir, "plots", "sweep.png")


def _read_json(path: str) -> dict | None:
  """The JSON record at `path`, or None where there is none."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def read_sweep(workdir: str) -> dict | None:
  return _read_json(sweep_path(workdir))


def sweep_points(workdir: str) -> list[dict] | None:
  """The points of the sweep a workdir records; None without a sweep."""
  return (read_sweep(workdir) or {}).get("points")


def check_same_sweep(workdir: str, points: list[dict] | None) -> None:
  """A started workdir trains the sweep it was started with (None: no sweep), like its config."""
  if read_config(workdir) is None:
    return
  recorded = sweep_points(workdir)
  if recorded != points:
    raise ConfigChanged(
      f"The workdir {workdir} was started with another sweep ({recorded} there, {points} now). "
      "Use a new --workdir, pass the same sweep, or add --restart to move the old contents "
      "aside and start over."
    )


def selected_runs(workdir: str) -> set[str] | None:
  """The run names of a sweep's selected points (the runs it tested); None without a sweep."""
  record = read_sweep(workdir)
  if record is None:
    return None
  selected = record["selected"]
  return {
    run_name(r["fold"], r["seed"], r["point"])
    for r in record["runs"]
    if selected.get(str(r["fold"])) == r["point"]
  }


def write_sweep_points(workdir: str, points: list[dict]) -> None:
  """Records a sweep's points as the workdir starts (`sweep.json` gets its runs at the end)."""
  if read_sweep(workdir) is None:
    write_json(sweep_path(workdir), {"points": points, "runs": [], "selected": {}}, "the sweep")


def eval_dir(workdir: str) -> str:
  """`W/eval`: what eval mode writes (the same files as training); training never reads it."""
  return under(workdir, EVAL_DIR)


def read_config(workdir: str) -> dict | None:
  """`W/config.json` as recorded (nested dicts and lists), or None where there is none."""
  return _read_json(config_path(workdir))


def load_config(workdir: str):
  """The config the workdir was started with, as today's code reads it: a key added since it
  was written takes its default (`as_read_now`), lists are tuples again."""
  recorded = read_config(workdir)
  if recorded is None:
    raise FileNotFoundError(f"No config.json in {workdir}: is it a workdir of emer_jax.main?")
  try:
    defaults = config_lib.base_config(recorded.get("model", {}).get("variant", "reference"))
  except (KeyError, ValueError):
    return config_lib.from_json(recorded)
  return config_lib.from_json(_filled(recorded, defaults.to_dict()))


def _filled(recorded: dict, defaults: dict) -> dict:
  out = dict(recorded)
  for key, value in defaults.items():
    if key not in out:
      out[key] = value
    elif isinstance(value, dict) and isinstance(out[key], dict):
      out[key] = _filled(out[key], value)
  return out


def as_read_now(old: dict, new: dict) -> dict:
  """A recorded flat config as today's code reads it: a key added since takes its default (that
  is what the code did before the key existed); a key since removed means nothing now."""
  try:
    defaults = config_check.flat(config_lib.base_config(old.get("model.variant", "reference")))
  except (KeyError, ValueError):
    defaults = {}
  return {k: old[k] if k in old else defaults[k] for k in new if k in old or k in defaults}


def changed_message(what: str, old: dict, new: dict, ways: str) -> str | None:
  """None when the configs agree on every key that matters, `old` read as today's code reads it
  (`as_read_now`), else the error message."""
  new = config_check.flat(new)
  differ = config_check.differences(as_read_now(config_check.flat(old), new), new)
  if not differ:
    return None
  listed = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in differ)
  return f"{what} was started with another config ({listed}). {ways}"


def check_same_config(workdir: str, config) -> None:
  old = read_config(workdir)
  if old is None:
    return
  message = changed_message(
    f"The workdir {workdir}",
    old,
    config_json(config),
    "Use a new --workdir, pass the same config, or add --restart to move the old contents "
    f"aside (to {workdir}/before-restart-<time>/) and start over.",
  )
  if message:
    raise ConfigChanged(message)


def move_aside(workdir: str) -> str | None:
  """Moves everything but the lock into `before-restart-<time>/`; returns that folder."""
  entries = [e for e in os.listdir(workdir) if e != LOCK and not e.startswith("before-restart-")]
  if not entries:
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
  aside = os.path.join(workdir, f"before-restart-{stamp}")
  os.makedirs(aside)
  for entry in entries:
    os.rename(os.path.join(workdir, entry), os.path.join(aside, entry))
  return aside


def write_config(workdir: str, config) -> None:
  """Records the accepted config once: a rerun's keys that may differ do not replace it."""
  if read_config(workdir) is not None:
    return
  write_json(config_path(workdir), config_json(config), "the workdir's config")


@contextlib.contextmanager
def locked(workdir: str):
  """The workdir's lock, held by process 0 of the job (other processes only follow it)."""
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index():
    yield
    return
  with locks.exclusive(os.path.join(workdir, LOCK), f"The workdir {workdir}"):
    yield


def finished_run(config, workdir, fold, seed, point=None) -> dict | None:
  """The recorded result of a finished run (a rerun skips it), or None; one recorded under
  another config is an error. A sweep's run records its validation first, its test once chosen."""
  path = run_json_path(workdir, fold, seed, point)
  result = _read_json(path)
  if result is None:
    return None
  if "config" not in result:  # recorded before runs kept their config: config.json vouches
    return result
  message = changed_message(
    f"The finished run {path}",
    result["config"],
    config_json(config),
    "Rerun with the config it was trained with, or use a new --workdir.",
  )
  if message:
    raise ConfigChanged(message)
  return result
