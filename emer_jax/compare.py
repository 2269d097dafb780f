"""Puts finished workdirs side by side in one table (Markdown, CSV, LaTeX; best per column marked).

  python -m emer_jax.compare runs/emert runs/face_only [--output=runs/compare]
      [--metrics=war,uar,war_masked] [--allow_mixed]

Each workdir is one row, labelled by its config's model (variant and modalities), and rows of
one model by the config keys in which their workdirs differ (`num_epochs=5`); its protocol
and dataset name the column group, with the test folds. The cells are each workdir's
`results.json` means ± std over folds and seeds: the same records and writer as the comparison
suite (emer_jax.suite). Numbers measured on different test folds or datasets are not
comparable, so a column refuses to mix them unless --allow_mixed, which then labels every row
with its own dataset and folds.
"""

import json
import os
import sys
from pathlib import Path

from absl import app, flags

from emer_jax import cli, logs
from emer_jax import paths as paths_lib
from emer_jax import workdir as workdir_lib
from emer_jax.config_check import flat, may_differ
from emer_jax.evaluation import tables
from emer_jax.evaluation.summary import model_name, read_config
from emer_jax.protocols import get_protocol, use_labels

METRICS = {
  "classification": ("war", "uar", "f1_weighted", "war_masked", "war_unmasked"),
  "regression": ("mae", "ccc"),
}


def records(model: str, protocol: str, results: dict, metrics, *, column=None, strict=True):
  """Comparison records (model, protocol, metric, mean, std) of one finished run directory.

  `metrics` lists metric names per target (e.g. 'war'); `column` names the column group
  (default: the protocol). With `strict`, a metric the results lack is an error; else it is
  left out (its cell shows '–').
  """
  out = []
  for target in get_protocol(protocol).targets:
    for metric in metrics:
      name = f"{target}/{metric}"
      if name not in results["mean"]:
        if not strict:
          continue
        raise KeyError(
          f"{protocol}/{model} has no metric {name!r} (it has {sorted(results['mean'])}); "
          "delete its results.json to rerun it with the current code."
        )
      std = results["std"].get(name)
      out.append(
        {
          "model": model,
          "protocol": column or protocol,
          "metric": name,
          "mean": results["mean"][name],
          "std": float("nan") if std is None else std,  # None: a single run (JSON null)
        }
      )
  return out


def read_workdir(workdir) -> tuple[dict, dict]:
  """(config, results) of a finished emer_jax.main workdir."""
  path = Path(workdir_lib.results_path(workdir))
  if not Path(workdir).exists():
    raise FileNotFoundError(f"{workdir} does not exist (expected a workdir of emer_jax.main).")
  if not path.exists():
    raise FileNotFoundError(
      f"{path} is missing: {workdir} is not a finished run (rerun emer_jax.main on it to finish)."
    )
  config = read_config(workdir)
  use_labels(config.get("labels"))  # a study's targets, as its run recorded them
  return config, json.loads(path.read_text())


def _folds(results) -> str:
  folds = sorted({run["fold"] for run in results["runs"]})
  return f"fold{'s' if len(folds) > 1 else ''} {','.join(map(str, folds))}"


# Shown elsewhere (the column, or the mixed label) or changing nothing trained.
_NOT_IN_LABELS = ("dataset", "folds", "protocol")


def _labels(workdirs) -> list[str]:
  """Each workdir's model name; where names repeat, with the config keys in which those
  workdirs differ ('reference (face) — num_epochs=5'), else the workdir's folder name."""
  names = [model_name(config) for _, config in workdirs]
  labels = []
  for (workdir, config), name in zip(workdirs, names, strict=True):
    same = [flat(c) for (_, c), n in zip(workdirs, names, strict=True) if n == name]
    if len(same) == 1:
      labels.append(name)
      continue
    mine = flat(config)
    differ = [
      k
      for k in sorted(set().union(*same))
      if not may_differ(k) and k not in _NOT_IN_LABELS and len({repr(c.get(k)) for c in same}) > 1
    ]
    keys = ", ".join(f"{k}={mine.get(k)}" for k in differ)
    labels.append(f"{name} — {keys or workdir.name}")
  return labels


def comparison_records(workdirs, metrics=None, allow_mixed: bool = False) -> list[dict]:
  """Records of every workdir, one row each, grouped in columns by protocol.

  Raises ValueError if one protocol's workdirs were tested on different datasets or folds,
  unless `allow_mixed`.
  """
  runs = []
  for workdir in workdirs:
    config, results = read_workdir(workdir)
    runs.append((Path(workdir), config, results))
  testbeds = {}  # protocol -> {(dataset, folds): [workdirs]}
  for workdir, config, results in runs:
    key = (config["dataset"], _folds(results))
    testbeds.setdefault(results["protocol"], {}).setdefault(key, []).append(str(workdir))
  mixed = {p for p, beds in testbeds.items() if len(beds) > 1}
  if mixed and not allow_mixed:
    lines = [
      f"  {p}: " + "; ".join(f"{d} {f}: {', '.join(w)}" for (d, f), w in testbeds[p].items())
      for p in sorted(mixed)
    ]
    raise ValueError(
      "These workdirs were tested on different datasets or folds, so their numbers are not "
      "comparable:\n" + "\n".join(lines) + "\nPass --allow_mixed to tabulate them anyway."
    )
  labels = _labels([(workdir, config) for workdir, config, _ in runs])
  out = []
  for (_, config, results), label in zip(runs, labels, strict=True):
    protocol = results["protocol"]
    if protocol in mixed:
      label = f"{label} [{config['dataset']}, {_folds(results)}]"
      column = f"{protocol} (mixed datasets/folds)"
    else:
      column = f"{protocol} ({config['dataset']}, {_folds(results)})"
    kind = get_protocol(protocol).kind
    names = metrics or METRICS[kind]
    out += records(label, protocol, results, names, column=column, strict=bool(metrics))
  return out


def compare(workdirs, output, metrics=None, allow_mixed: bool = False) -> dict[str, Path]:
  """Writes `output`/comparison.{md,csv,tex}; returns their paths."""
  return tables.write_comparison(comparison_records(workdirs, metrics, allow_mixed), output)


def main(argv):
  workdirs = [os.path.abspath(w) for w in argv[1:]]
  if not workdirs:
    raise app.UsageError("Name one or more finished workdirs: python -m emer_jax.compare W1 W2 …")
  f = flags.FLAGS
  try:
    paths_lib.check_writable_dir(f.output, "--output")
    paths = compare(workdirs, f.output, f.metrics or None, f.allow_mixed)
  except (FileNotFoundError, ValueError, KeyError, paths_lib.PathError) as e:
    print(f"emer_jax.compare: {e}", file=sys.stderr)
    sys.exit(1)
  print(paths["md"].read_text())
  logs.wrote("comparison", paths["md"], "also comparison.csv, comparison.tex")


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  cli.define_path("output", "runs/compare", "Directory for comparison.{md,csv,tex}.")
  flags.DEFINE_list("metrics", None, "Metrics per target, e.g. war,uar (default: per kind).")
  flags.DEFINE_bool("allow_mixed", False, "Tabulate workdirs tested on different data/folds.")
  logs.run(main)
