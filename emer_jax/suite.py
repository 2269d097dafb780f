"""Runs protocols × models and writes one comparison table (Markdown, CSV, LaTeX).

  python -m emer_jax.suite --config=configs/suite.py[:small] [--workdir=W]

Each cell (protocol, model) trains in its own workdir `W/<protocol>/<model>` with
`emer_jax.train.trainer.train_and_evaluate`, so it writes every per-run report. A cell whose
`results.json` exists is read, not rerun (refused when its recorded config differs from the one
the suite would run), and an interrupted cell resumes from its checkpoints:
rerunning the command finishes what is missing. The table `W/comparison.{md,csv,tex}` holds the
mean ± std over folds and seeds of the config's metrics; per column the best mean and every model
not significantly different from it are bold (paired bootstrap over the same test samples,
`emer_jax.evaluation.bootstrap.mark_ties`).

A suite config (see configs/suite.py) has:
  workdir: default output directory.
  protocols: protocol names (emer_jax.protocols.PROTOCOLS).
  protocol_arg: options for every cell's `emer_jax.config.protocol_config`, e.g. 'small'.
  models: name -> {arg: more protocol_config options, e.g. 'multitask' or 'variant=emert';
    overrides: a nested dict applied to the cell's config, e.g. {model: {modalities: (...)}};
    sweep: optional {config key: values} or ((key, values), …) (a key with dots), a product of
    points the cell sweeps (`emer_jax.sweep`; each fold tests the point best on validation)}.
  model_names: the models of `models` to run, in table order.
  overrides: applied to every cell's config after the model's, e.g. {folds: (1,)}.
  sweep: optional {config key: values} every cell sweeps (a product with the model's).
  metrics: {'classification': (...), 'regression': (...)} metric names tabulated per target.
  robustness: also test every cell under the corruptions of `emer_jax.evaluation.robustness`
    (each cell's `robustness/` reports) and write `W/robustness.{md,csv,tex}`: a row per
    model, a column per corruption, severity and `robustness_metrics` metric, mean ± std.
  robustness_corruptions: corruption names to run ('': all).
"""

import json
import os
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from emer_jax import cli, compare, config_check, dataset_targets, logs
from emer_jax import paths as paths_lib
from emer_jax import sweep as sweep_lib
from emer_jax.config import protocol_config
from emer_jax.evaluation import bootstrap, tables
from emer_jax.protocols import PROTOCOLS, get_protocol, study_labels

FLAGS = flags.FLAGS


def cell_config(suite, protocol: str, model: str):
  """The training config of one cell: the protocol's config, then the model's and the suite's
  overrides."""
  spec = suite.models[model]
  arg = ",".join(a for a in (suite.protocol_arg, spec.get("arg", "")) if a)
  config = protocol_config(protocol, arg)
  config.update(spec.get("overrides", {}))
  config.update(suite.get("overrides", {}))
  return config


def cell_points(suite, model: str) -> list[dict] | None:
  """The cell's sweep: the product of the model's and the suite's `sweep` (None: neither)."""

  def pairs(swept):  # {key: values}, or ((key, values), …) where a key has dots
    return list(swept.items()) if hasattr(swept, "items") else [tuple(p) for p in swept]

  swept = pairs(suite.models[model].get("sweep", ())) + pairs(suite.get("sweep", ()))
  if not swept:
    return None
  return sweep_lib.product([sweep_lib.sweep(k, list(v)) for k, v in swept])


def check_suite(suite) -> None:
  """Every protocol, model name and cell config is valid: checked before any cell trains."""
  errors = []
  unknown = [p for p in suite.protocols if p not in PROTOCOLS and not study_labels(p)]
  if unknown:
    errors.append(
      f"protocols: unknown {unknown}; expected names from {sorted(PROTOCOLS)} or "
      "'study:<label>[,<label>…]'"
    )
  missing = [m for m in suite.model_names if m not in suite.models]
  if missing:
    errors.append(f"model_names: unknown {missing}; the suite's models are {sorted(suite.models)}")
  if errors:
    raise config_check.ConfigError("Invalid suite: " + "; ".join(errors) + ".")
  for protocol in suite.protocols:
    for model in suite.model_names:
      config = cell_config(suite, protocol, model)
      cell_errors = config_check.config_errors(config)
      if cell_errors:
        raise config_check.ConfigError(f"Cell {protocol}/{model}: " + "; ".join(cell_errors) + ".")
      points = cell_points(suite, model)
      if points is not None:
        try:
          sweep_lib.check(config, points)
        except config_check.UserError as e:
          raise config_check.ConfigError(f"Cell {protocol}/{model}: {e}") from None


def run_cell(suite, protocol: str, model: str, workdir: str) -> dict:
  """The cell's results: read when finished with the same config, else trained (resuming what
  was started)."""
  from emer_jax import workdir as workdir_lib
  from emer_jax.train.trainer import train_and_evaluate

  config = dataset_targets.resolve(cell_config(suite, protocol, model))
  points = cell_points(suite, model)
  points = None if points is None else sweep_lib.normalised(points)
  path = workdir_lib.results_path(workdir)
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
    message = workdir_lib.changed_message(
      f"The finished cell {protocol}/{model} ({path})",
      results.get("config", {}),
      json.loads(config.to_json_best_effort()),
      "Run the suite with the overrides it was run with, or use a new --workdir.",
    )
    if message:
      raise workdir_lib.ConfigChanged(message)
    workdir_lib.check_same_sweep(workdir, points)
    logging.info("Cell %s/%s is finished; reading %s.", protocol, model, path)
    return results
  start = time.perf_counter()
  logs.phase(f"cell {protocol}/{model}: training in {workdir}")
  results = train_and_evaluate(config, workdir, points=points)
  logging.info("Cell %s/%s took %.0f s.", protocol, model, time.perf_counter() - start)
  return results


def records(suite, protocol: str, model: str, results: dict) -> list[dict]:
  """Comparison records (model, protocol, metric, mean, std) of one cell, as emer_jax.compare
  makes them for any workdir."""
  return compare.records(model, protocol, results, suite.metrics[get_protocol(protocol).kind])


def run_suite(suite, workdir: str) -> dict:
  """Runs every cell (protocols outer, models inner) and writes the comparison table."""
  check_suite(suite)
  all_records, cells, robust_records = [], {}, []
  for protocol in suite.protocols:
    for model in suite.model_names:
      cells[(protocol, model)] = os.path.join(workdir, protocol, model)
      results = run_cell(suite, protocol, model, cells[(protocol, model)])
      all_records += records(suite, protocol, model, results)
      if suite.get("robustness", False):
        robust_records += robustness_records(suite, protocol, model, workdir)
  if jax.process_index():
    return {}
  if robust_records:
    tables.write_comparison(robust_records, workdir, name="robustness")
  return tables.write_comparison(bootstrap.mark_ties(all_records, cells), workdir)


def robustness_records(suite, protocol: str, model: str, workdir: str) -> list[dict]:
  """One cell's robustness comparison records (its report is read when up to date)."""
  from emer_jax.evaluation import robustness

  config = cell_config(suite, protocol, model)
  names = tuple(suite.get("robustness_corruptions", ())) or None
  report = robustness.cell_report(config, os.path.join(workdir, protocol, model), names)
  metrics = suite.robustness_metrics[get_protocol(protocol).kind]
  return robustness.comparison_records(report, model, metrics)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  workdir = FLAGS.workdir or os.path.abspath(FLAGS.config.workdir)
  paths_lib.check_writable_dir(workdir, "--workdir" if FLAGS.workdir else "The suite's workdir")
  start = time.perf_counter()
  paths = run_suite(FLAGS.config, workdir)
  if paths:
    print(paths["md"].read_text())
    took = f"also comparison.csv, comparison.tex; {time.perf_counter() - start:.0f} s"
    logs.wrote("comparison", paths["md"], took)
    logs.wrote("cells", workdir, "a workdir per protocol/model, each with results.md and plots/")


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  config_flags.DEFINE_config_file("config", None, "Suite config, e.g. configs/suite.py[:small].")
  cli.define_path("workdir", None, "Output directory; the config's `workdir` if unset.")
  flags.mark_flags_as_required(["config"])
  cli.run(main)
