"""Robustness of a finished run: its selected checkpoints tested under input corruptions.

  python -m emer_jax.evaluation.robustness --workdir=RUN [--config=C] [--corruptions=noise,remove]

Each run of RUN (`runs/fold{k}_seed{s}.json`) is tested again on its test fold with the weights
the trainer tested (`checkpoints/fold{k}_seed{s}/best`), once clean and once per corruption and
severity of `emer_jax.evaluation.corruptions` that concerns the streams the model reads. The
corruptions run on the devices, on the same batches the trainer evaluated; nothing is retrained
and nothing of the run is changed. Writes, in RUN/robustness/:
  robustness.json   {"rows": [{"corruption", "modality", "severity", "amount", "metrics",
                    "std", "runs": [{"fold", "seed", "metrics"}]}, …], …}: `metrics` holds the
                    mean over the run's folds and seeds under results.json's names
                    ('er_emotion/war', …), `std` their sample std, `runs` each run's values.
                    The `none` row (severity 0) is the clean test: it equals results.json.
  robustness.csv    one line per row and run, then its mean and std (`fold` = mean / std)
  robustness.md     the headline metrics per row, mean ± std
  degradation.png   each headline metric against severity, one line per corruption
By default the run's own `config.json` says what was trained; `--config` gives another config
file (e.g. to read the dataset from another `data_dir`).
"""

import json
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from absl import app, flags, logging
from tqdm.auto import tqdm

from emer_jax import cli, dataset_targets, logs, paths
from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.data import pipeline
from emer_jax.data.source import open_source
from emer_jax.evaluation import corruptions as corruptions_lib
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation import plots, tables
from emer_jax.protocols import TARGETS, get_protocol, head_sizes
from emer_jax.train import eval_mode, run_checkpoints, run_eval, steps
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib

FLAGS = flags.FLAGS


def _read_results(workdir: str) -> dict:
  path = workdir_lib.results_path(workdir)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"No results.json in {workdir}: the robustness protocol tests a finished run. Train it "
      "first (python -m emer_jax.main --config=… --workdir=…)."
    )
  with open(path) as f:
    return json.load(f)


def selected_state(config, workdir: str, run: dict, targets, mesh):
  """(graphdef, state) holding the weights a run was tested with: its `best` checkpoint at the
  selected step, else its `latest` at that step (a run without validation), else the config's
  `init_checkpoint` (eval mode)."""
  name = workdir_lib.run_name(run["fold"], run["seed"], run.get("point"))
  graphdef, abstract, state = state_lib.init_state(
    config, head_sizes(targets), run["seed"], 1, mesh
  )
  run_dir = workdir_lib.checkpoints_dir(workdir, name)
  step = run["selected_step"]
  source = run_checkpoints.selected_checkpoint(run_dir, step)
  with jax.set_mesh(mesh):
    if source is not None:
      return graphdef, run_checkpoints.load_for_eval(source, abstract, state)[0]
    if config.init_checkpoint and step == 0:
      return graphdef, state_lib.with_init_checkpoint(config, graphdef, state)
  raise FileNotFoundError(
    f"Run {name} was tested at step {step}, but neither {run_dir}/best nor {run_dir}/latest "
    "holds that step (and the config has no init_checkpoint)."
  )


def _settings(config, names):
  """(corruption or None, severity, amount) of every row: clean first."""
  read = config.model.modalities
  chosen = corruptions_lib.for_model(read, names)
  return [(None, 0, None)] + [
    (c, severity, amount) for c in chosen for severity, amount in enumerate(c.amounts, 1)
  ]


def _corruption_key(seed: int, corruption) -> jax.Array:
  """The same key at every severity of a corruption, so severities nest."""
  tag = zlib.crc32(f"{corruption.name}/{corruption.modality}".encode())
  return jax.random.fold_in(jax.random.key(seed), tag)


def _corrupted_step(eval_step, corrupt_fn, corruption, amount, key):
  """`eval_step` on each batch corrupted on the devices; batch b uses fold_in(key, b)."""
  count = [0]

  def step(state, batch):
    batch_key = jax.random.fold_in(key, count[0])
    count[0] += 1
    return eval_step(state, corrupt_fn(batch, batch_key, corruption, amount))

  return step


def _most_frequent(data, indices, targets) -> dict:
  """Per classification target, the accuracy of always predicting the test fold's most
  frequent class."""
  out = {}
  for name in targets:
    if TARGETS[name].kind == "classification":
      labels = np.asarray(data.index[name][indices])
      out[f"{name}/war"] = float(np.bincount(labels).max() / len(labels))
  return out


def evaluate_robustness(config, workdir: str, names=None, seed: int = 0) -> dict:
  """Tests every run of `workdir` clean and under each corruption; writes and returns the
  report (see the module docstring). `names` limits the corruptions (`none` always runs)."""
  workdir = os.path.abspath(workdir)
  paths.check_writable_dir(workdir_lib.robustness_dir(workdir), "The robustness folder")
  results = _read_results(workdir)
  dataset_targets.resolve(config)
  mesh = state_lib.make_mesh(config)
  data = open_source(config.dataset, config.data_dir, prepare=False, cache=config.input.cache)
  targets = state_lib.run_targets(config)
  settings = _settings(config, names)
  per_row = [[] for _ in settings]
  frequent = []
  points = workdir_lib.sweep_points(workdir)
  base = config
  for run in results["runs"]:
    point = run.get("point")
    config = sweep_lib.point_config(base, points, point)  # its own model
    split = runs_lib.run_split(config, data, run["fold"])
    if len(split.test) != run["num_test"]:
      raise ValueError(
        f"Fold {run['fold']} has {len(split.test)} test samples here but {run['num_test']} in "
        f"{workdir}/results.json: the dataset or split settings differ from the run's."
      )
    graphdef, state = selected_state(config, workdir, run, targets, mesh)
    out = workdir_lib.robustness_dir(workdir)
    run_data = eval_mode.eval_normalised(
      config, data, split, workdir, out, run["fold"], run["seed"], run.get("point")
    )
    corrupt_fn = corruptions_lib.make_corrupt_fn(pipeline.normalisation(run_data))
    eval_step = steps.make_eval_step(graphdef, dtype=jnp.dtype(config.dtype))
    labels = {name: data.index[name][split.test] for name in targets}
    masked = run_eval.masked_of(data.index, split.test)
    frequent.append(_most_frequent(data, split.test, targets))
    progress = tqdm(
      zip(per_row, settings, strict=True),
      total=len(settings),
      desc=f"robustness fold{run['fold']}_seed{run['seed']}",
      unit="row",
      disable=jax.process_index() != 0,
    )
    with jax.set_mesh(mesh):
      for rows, (corruption, _, amount) in progress:
        step = eval_step
        if corruption is not None:
          key = _corruption_key(seed, corruption)
          step = _corrupted_step(eval_step, corrupt_fn, corruption, amount, key)
        outputs = run_eval.predict(step, state, run_data, split.test, config, targets, mesh)
        rows.append(metrics_lib.fold_metrics(labels, outputs, masked))
    if not _same_metrics(per_row[0][-1], run["metrics"]):
      logging.warning(
        "Fold %d seed %d: the clean test here differs from results.json (another machine or "
        "library version?); the rows compare with this run's clean row.",
        run["fold"],
        run["seed"],
      )
  report = {
    "workdir": workdir,
    "protocol": base.protocol,
    "targets": list(get_protocol(base.protocol).targets),
    "model": {"variant": base.model.variant, "modalities": list(base.model.modalities)},
    "seed": seed,
    "most_frequent_class": metrics_lib.summarize(frequent)["mean"],
    "corruptions": [
      {"corruption": c.name, "modality": c.modality, "unit": c.unit, "amounts": list(c.amounts)}
      for c in dict.fromkeys(c for c, _, _ in settings if c is not None)
    ],
    "rows": [
      _row(corruption, severity, amount, results["runs"], runs)
      for (corruption, severity, amount), runs in zip(settings, per_row, strict=True)
    ],
  }
  if jax.process_index() == 0:
    write_report(report, workdir_lib.robustness_dir(workdir))
  return report


def _same_metrics(computed, recorded) -> bool:
  """Whether freshly computed metrics equal a results.json record (where NaN reads null)."""
  computed = {k: v for k, v in metrics_lib.flatten_scalars(computed).items() if not np.isnan(v)}
  return computed == metrics_lib.flatten_scalars(recorded)


def _row(corruption, severity, amount, runs, metrics) -> dict:
  summary = metrics_lib.summarize(metrics)
  return {
    "corruption": "none" if corruption is None else corruption.name,
    "modality": "" if corruption is None else corruption.modality,
    "severity": severity,
    "amount": amount,
    "metrics": summary["mean"],
    "std": summary["std"],
    "runs": [
      {"fold": r["fold"], "seed": r["seed"], "metrics": metrics_lib.flatten_scalars(m)}
      for r, m in zip(runs, metrics, strict=True)
    ],
  }


def headline_metrics(report) -> list[str]:
  """The metrics the table and plot show: each target's first metrics and masked accuracy."""
  names = []
  for target in report["targets"]:
    kind = TARGETS[target].kind
    wanted = ("war", "uar", "war_masked") if kind == "classification" else ("mae", "ccc")
    names += [f"{target}/{m}" for m in wanted if f"{target}/{m}" in report["rows"][0]["metrics"]]
  return names


def write_report(report: dict, out_dir: str) -> None:
  """robustness.json, .csv, .md and degradation.png in out_dir."""
  os.makedirs(out_dir, exist_ok=True)
  workdir_lib.write_json(os.path.join(out_dir, "robustness.json"), report)
  lines = []
  for row in report["rows"]:
    key = {k: row[k] for k in ("corruption", "modality", "severity", "amount")}
    lines += [{**key, "fold": r["fold"], "seed": r["seed"], **r["metrics"]} for r in row["runs"]]
    lines.append({**key, "fold": "mean", "seed": "", **row["metrics"]})
    lines.append({**key, "fold": "std", "seed": "", **row["std"]})
  pd.DataFrame(lines).to_csv(os.path.join(out_dir, "robustness.csv"), index=False)
  names = headline_metrics(report)
  text = [
    f"# Robustness: {report['protocol']}, {report['model']['variant']} reading "
    f"{', '.join(report['model']['modalities'])}",
    "",
    f"Mean ± std over {len(report['rows'][0]['runs'])} run(s); severity 0 is the clean test. "
    "Always predicting the test fold's most frequent class: "
    + ", ".join(f"{k} {v:.3f}" for k, v in report["most_frequent_class"].items())
    + ".",
    "",
    "| corruption | modality | severity | amount | " + " | ".join(names) + " |",
    "| --- | --- | :---: | :---: | " + " | ".join([":---:"] * len(names)) + " |",
  ]
  units = {(c["corruption"], c["modality"]): c["unit"] for c in report["corruptions"]}
  for row in report["rows"]:
    unit = units.get((row["corruption"], row["modality"]), "")
    amount = "" if row["amount"] is None else f"{row['amount']:g} ({unit})"
    cells = [tables.format_mean_std(row["metrics"][n], _nan(row["std"].get(n))) for n in names]
    text.append(
      f"| {row['corruption']} | {row['modality']} | {row['severity']} | {amount} | "
      + " | ".join(cells)
      + " |"
    )
  with open(os.path.join(out_dir, "robustness.md"), "w") as f:
    f.write("\n".join(text) + "\n")
  plots.plot_degradation(
    report["rows"],
    names,
    os.path.join(out_dir, "degradation.png"),
    baselines=report["most_frequent_class"],
    title=f"{report['protocol']}, {report['model']['variant']}",
  )


def _nan(value) -> float:
  return float("nan") if value is None else float(value)


def comparison_records(report: dict, model: str, metrics) -> list[dict]:
  """Records for `tables.write_comparison`: one column per corruption, severity and metric
  ('noise(eye+gaze)@3 er_emotion/war'), one row per model."""
  out = []
  for row in report["rows"]:
    label = "none"
    if row["corruption"] != "none":
      label = f"{row['corruption']}({row['modality']})@{row['severity']}"
    for target in report["targets"]:
      for metric in metrics:
        name = f"{target}/{metric}"
        if name in row["metrics"]:
          out.append(
            {
              "model": model,
              "protocol": report["protocol"],
              "metric": f"{label} {name}",
              "mean": row["metrics"][name],
              "std": _nan(row["std"].get(name)),
            }
          )
  return out


def cell_report(config, workdir: str, names=None) -> dict:
  """A suite cell's report: read from its robustness.json when that holds the same
  corruptions, else computed (and written)."""
  path = os.path.join(workdir_lib.robustness_dir(workdir), "robustness.json")
  wanted = [(c.name, c.modality) for c in corruptions_lib.for_model(config.model.modalities, names)]
  if os.path.exists(path):
    with open(path) as f:
      report = json.load(f)
    if [(c["corruption"], c["modality"]) for c in report["corruptions"]] == wanted:
      return report
  return evaluate_robustness(config, workdir, names)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  paths.check_writable_dir(workdir_lib.robustness_dir(FLAGS.workdir), "The robustness folder")
  config = FLAGS.config if FLAGS.config is not None else workdir_lib.load_config(FLAGS.workdir)
  names = [n for n in FLAGS.corruptions if n != "none"] or None
  report = evaluate_robustness(config, FLAGS.workdir, names, FLAGS.seed)
  if jax.process_index() == 0:
    out = workdir_lib.robustness_dir(FLAGS.workdir)
    with open(os.path.join(out, "robustness.md")) as f:
      print(f.read())
    rows = f"{len(report['rows'])} rows: corruption, modality, severity"
    logs.wrote("robustness table", os.path.join(out, "robustness.md"), rows)
    logs.wrote("per-run numbers", os.path.join(out, "robustness.csv"), "and robustness.json")
    logs.wrote("plot", os.path.join(out, "degradation.png"))


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  from ml_collections import config_flags

  cli.define_path("workdir", None, "A finished training workdir.")
  config_flags.DEFINE_config_file("config", None, "Config file; the run's config.json if unset.")
  flags.DEFINE_list(
    "corruptions", [], "Corruptions to run, e.g. remove,noise(eye+gaze) (default: all that apply)."
  )
  flags.DEFINE_integer("seed", 0, "Seed of the corruptions' randomness.")
  flags.mark_flags_as_required(["workdir"])
  cli.run(main)
