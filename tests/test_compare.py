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


def _workdir(path, *, modalities, wars, folds=(1, 2), dataset="emer/synthetic_small"):
  """A finished workdir as emer_jax.main leaves it: config.json and results.json."""
  config = base_config("reference")
  config.dataset, config.protocol, config.folds = dataset, "er7", folds
  config.model.modalities = modalities
  runs = [
    {
      "fold": fold,
      "seed": 0,
      "selected_step": 10,
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
  path.mkdir()
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
