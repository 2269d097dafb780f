"""emer_jax.compare: finished workdirs in one table, refusing to mix test folds or datasets."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from emer_jax import compare
from emer_jax.config import base_config
from emer_jax.evaluation import metrics as metrics_lib
from emer_jax.evaluation.tables import format_mean_std

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _workdir(path, *, modalities, wars, folds=(1, 2), dataset="emer/synthetic_small", **changes):
  """A finished workdir as emer_jax.main leaves it: config.json and results.json."""
  config = base_config("reference")
  config.dataset, config.protocol, config.folds = dataset, "er7", folds
  config.update(changes)
  config.model.modalities = modalities
  runs = [
    {
      "fold": fold,
      "seed": 0,
      "selected_step": 10,
      "num_train": 127,
      "num_val": 25,
      "num_test": 38,
      "metrics": {
        "er_emotion": {
          "war": war,
          "uar": war / 2,
          "f1_weighted": war / 3,
          "war_masked": war / 4,
          "war_unmasked": war / 5,
        }
      },
    }
    for fold, war in zip(folds, wars, strict=True)
  ]
  results = {"protocol": "er7", "targets": ["er_emotion"], "runs": runs}
  results |= metrics_lib.summarize([r["metrics"] for r in runs])
  path.mkdir(parents=True)
  (path / "config.json").write_text(config.to_json_best_effort())
  (path / "results.json").write_text(json.dumps(results))
  return path


def test_compare_writes_each_workdirs_results(tmp_path):
  emert = _workdir(tmp_path / "emert", modalities=("face", "eye", "gaze"), wars=(0.5, 0.7))
  face = _workdir(tmp_path / "face", modalities=("face",), wars=(0.4, 0.45))
  out = subprocess.run(
    [sys.executable, "-m", "emer_jax.compare", str(emert), str(face), f"--output={tmp_path}/c"],
    cwd=REPO,
    capture_output=True,
    text=True,
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.rstrip().endswith(
    f"wrote comparison: {tmp_path}/c/comparison.md  (also comparison.csv, comparison.tex)"
  )
  table = pd.read_csv(tmp_path / "c" / "comparison.csv").set_index("model")
  assert list(table.index) == ["reference (face+eye+gaze)", "reference (face)"]
  column = "er7 (emer/synthetic_small, folds 1,2)"
  for model, workdir in zip(table.index, (emert, face), strict=True):
    results = json.loads((workdir / "results.json").read_text())
    for metric in ("war", "uar", "f1_weighted", "war_masked", "war_unmasked"):
      name = f"er_emotion/{metric}"
      cell = table.loc[model, f"{column} {name}"].strip("*")
      assert cell == format_mean_std(results["mean"][name], results["std"][name])
  assert table.loc["reference (face+eye+gaze)", f"{column} er_emotion/war"].startswith("**")
  assert not table.loc["reference (face)", f"{column} er_emotion/war"].startswith("**")
  assert (tmp_path / "c" / "comparison.tex").read_text().startswith(r"\begin{tabular}")


def test_compare_refuses_to_mix_folds_or_datasets(tmp_path):
  one = _workdir(tmp_path / "one", modalities=("face",), wars=(0.5, 0.6))
  other = _workdir(tmp_path / "other", modalities=("eye",), wars=(0.3,), folds=(3,))
  sim = _workdir(tmp_path / "sim", modalities=("eye",), wars=(0.3, 0.4), dataset="emer/synthetic")
  for workdirs in ((one, other), (one, sim)):
    with pytest.raises(ValueError, match="(?s)not comparable.*--allow_mixed"):
      compare.comparison_records(workdirs)
  records = compare.comparison_records((one, other, sim), allow_mixed=True)
  assert {r["protocol"] for r in records} == {"er7 (mixed datasets/folds)"}
  models = {r["model"] for r in records}
  assert "reference (eye) — other [emer/synthetic_small, fold 3]" in models
  assert "reference (eye) — sim [emer/synthetic, folds 1,2]" in models
  with pytest.raises(FileNotFoundError, match="not a finished run"):
    compare.comparison_records((one, tmp_path))
  with pytest.raises(FileNotFoundError, match=f"^{tmp_path}/nope does not exist"):
    compare.comparison_records((one, tmp_path / "nope"))


def test_compare_labels_rows_of_one_model_by_the_keys_that_differ(tmp_path):
  short = _workdir(tmp_path / "a" / "run", modalities=("face",), wars=(0.5, 0.6))
  long = _workdir(tmp_path / "b" / "run", modalities=("face",), wars=(0.6, 0.7), num_epochs=40)
  fast = _workdir(tmp_path / "c" / "run", modalities=("face",), wars=(0.6, 0.7), learning_rate=0.01)
  other = _workdir(tmp_path / "d", modalities=("eye",), wars=(0.3, 0.4))
  models = [r["model"] for r in compare.comparison_records((short, long, fast, other))]
  assert list(dict.fromkeys(models)) == [
    "reference (face) — learning_rate=0.0001, num_epochs=200",
    "reference (face) — learning_rate=0.0001, num_epochs=40",
    "reference (face) — learning_rate=0.01, num_epochs=200",
    "reference (eye)",
  ]


def test_summary_gives_mean_std_beside_chance_and_the_paths(tmp_path):
  from emer_jax.evaluation.summary import summary_lines

  workdir = _workdir(tmp_path / "w", modalities=("face", "eye", "gaze"), wars=(0.5, 0.7))
  results = json.loads((workdir / "results.json").read_text())
  lines = summary_lines(results, workdir)
  assert (
    lines[0]
    == "er7 · reference (face+eye+gaze) · emer/synthetic_small: 2 runs (folds 1, 2; seed 0)"
  )
  assert lines[1].startswith("  er_emotion  WAR 0.600 ± 0.141  UAR 0.300 ± 0.071")
  assert lines[1].endswith("chance 0.143 (1 of 7 classes)")
  assert "masked (ER ≠ FER) WAR 0.150 ± 0.035" in lines[2]
  assert lines[3] == "  selected step 10 · test samples 38 · validation 25 · train 127"
  assert lines[-3].startswith(f"wrote results: {workdir}/results.md")
  assert lines[-2] == f"wrote plots: {workdir}/plots/  (0 files)"
