"""The few lines a finished job prints: what was run, the headline numbers, and where the rest is.

For a tiny 6-step run of the quickstart (tests/test_train.py's settings):

  er7 · reference (face+eye+gaze) · emer/synthetic_small: 1 run (fold 1; seed 0)
    er_emotion  WAR 0.211  UAR 0.170  F1 macro 0.084   chance 0.143 (1 of 7 classes)
                masked (ER ≠ FER) WAR 0.250  unmasked WAR 0.192
    selected step 6 · test samples 38 · validation 25 · train 127
  wrote results: W/results.md  (also results.json, results.csv, per_class_recall.csv, …)
  wrote plots: W/plots/  (3 files)
  wrote logs: W/tensorboard/  (tensorboard --logdir W/tensorboard), checkpoints in W/checkpoints

Over several runs the numbers read 'mean ± std' (sample std over folds × seeds)."""

import os
from pathlib import Path

from emer_jax import workdir as workdir_lib
from emer_jax.evaluation.tables import format_mean_std
from emer_jax.protocols import TARGETS

HEADLINE = {
  "classification": (("war", "WAR"), ("uar", "UAR"), ("f1_macro", "F1 macro")),
  "regression": (("mae", "MAE"), ("pcc", "PCC"), ("ccc", "CCC")),
}


def read_config(workdir) -> dict:
  """The config a workdir was started with, as a dict (`emer_jax.workdir.load_config`)."""
  return workdir_lib.load_config(os.fspath(workdir)).to_dict()


def model_name(config: dict) -> str:
  """'reference (face+eye+gaze)', with 'no discriminator' where it is switched off."""
  model = config["model"]
  parts = ["+".join(model["modalities"])]
  if not model.get("use_discriminator", True) and len(model["modalities"]) > 1:
    parts.append("no discriminator")
  return f"{model['variant']} ({', '.join(parts)})"


def describe(config: dict) -> str:
  """'protocol · model · dataset', the label of a run in summaries and comparison tables."""
  return f"{config['protocol']} · {model_name(config)} · {config['dataset']}"


def _stat(results, target, metric) -> str | None:
  """'mean ± std' over the runs (`metrics.summarize`), or None if the runs lack the metric."""
  name = f"{target}/{metric}"
  if name not in results["mean"]:
    return None
  std = results["std"].get(name)
  return format_mean_std(results["mean"][name], float("nan") if std is None else std)


def _runs_text(results) -> str:
  runs = results["runs"]
  folds = sorted({r["fold"] for r in runs})
  seeds = sorted({r["seed"] for r in runs})
  fold_text = f"fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))}"
  seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
  return f"{len(runs)} run{'s' if len(runs) > 1 else ''} ({fold_text}; {seed_text})"


def _per_run(results, key) -> str:
  values = [r.get(key, "–") for r in results["runs"]]
  if len(set(values)) == 1:
    return str(values[0])
  return ", ".join(
    f"{v} (fold {r['fold']} seed {r['seed']})" for v, r in zip(values, results["runs"], strict=True)
  )


def _target_lines(results, target) -> list[str]:
  spec = TARGETS[target]
  cells = []
  for metric, label in HEADLINE[spec.kind]:
    stat = _stat(results, target, metric)
    if stat is not None:
      cells.append(f"{label} {stat}")
  if spec.kind == "classification":
    n = len(spec.class_names)
    chance = f"chance {1 / n:.3f} (1 of {n} classes)"
  else:
    chance = "chance PCC 0, CCC 0"
  lines = [f"  {target}  " + "  ".join(cells) + f"   {chance}"]
  masked = _stat(results, target, "war_masked")
  unmasked = _stat(results, target, "war_unmasked")
  if masked is not None or unmasked is not None:
    lines.append(
      " " * (len(target) + 4)
      + f"masked (ER ≠ FER) WAR {masked or '–'}  unmasked WAR {unmasked or '–'}"
    )
  return lines


def summary_lines(results: dict, workdir) -> list[str]:
  """The human summary of a finished `train_and_evaluate` (its returned `results`)."""
  workdir = os.fspath(workdir)
  try:
    title = describe(read_config(workdir))
  except FileNotFoundError:
    title = results["protocol"]
  lines = [f"{title}: {_runs_text(results)}"]
  for target in results["targets"]:
    lines += _target_lines(results, target)
  trained = any(run.get("selected_step") for run in results["runs"])
  if trained:
    selected = f"selected step {_per_run(results, 'selected_step')}"
  elif any("checkpoint_step" in run for run in results["runs"]):
    selected = f"evaluated step {_per_run(results, 'checkpoint_step')} (mode eval)"
  else:
    selected = "selected step none (not trained: mode eval)"
  for r in results["runs"]:
    if r.get("finished") is False:
      run = f"fold{r['fold']}_seed{r['seed']}"
      lines.append(
        f"  UNFINISHED: {run} did not finish training (no runs/{run}.json); these numbers are "
        f"of its checkpoint of step {r['checkpoint_step']}, not of a finished run"
      )
  lines.append(
    f"  {selected} · test samples "
    f"{_per_run(results, 'num_test')} · validation {_per_run(results, 'num_val')} · "
    f"train {_per_run(results, 'num_train')}"
  )
  plots = Path(workdir_lib.plots_dir(workdir))
  num_plots = len(list(plots.glob("*.png"))) if plots.is_dir() else 0
  lines.append(
    f"wrote results: {workdir_lib.results_table_paths(workdir)[1]}  (also results.json, "
    "results.csv, per_class_recall.csv, predictions_fold*_seed*.csv)"
  )
  lines.append(f"wrote plots: {plots}{os.sep}  ({num_plots} files)")
  if trained:  # eval mode writes neither
    tensorboard = workdir_lib.tensorboard_dir(workdir, "")
    lines.append(
      f"wrote logs: {tensorboard}  (tensorboard --logdir {tensorboard.rstrip(os.sep)}), "
      f"checkpoints in {workdir_lib.checkpoints_dir(workdir).rstrip(os.sep)}"
    )
  return lines


def print_summary(results: dict, workdir):
  print("\n".join(summary_lines(results, workdir)), flush=True)
