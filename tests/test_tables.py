"""Run result tables and the models × protocols comparison table."""

import math

import numpy as np
import pandas as pd
import pytest

from emer_jax.evaluation.metrics import summarize
from emer_jax.evaluation.tables import (
  comparison_frame,
  comparison_latex,
  comparison_markdown,
  format_mean_std,
  higher_is_better,
  write_comparison,
  write_results,
)


def _results():
  runs = [
    {
      "fold": k,
      "seed": s,
      "metrics": {
        "er_emotion": {"war": 0.5 + 0.1 * k, "uar": 0.4 + s / 10, "confusion": [[1, 0], [0, 1]]}
      },
    }
    for k in range(3)
    for s in range(2)
  ]
  return {"runs": runs, **summarize([r["metrics"] for r in runs])}


def test_write_results_csv_and_markdown(tmp_path):
  results = _results()
  csv_path, md_path = write_results(results, tmp_path)
  frame = pd.read_csv(csv_path)
  assert list(frame.columns) == ["fold", "seed", "er_emotion/war", "er_emotion/uar"]
  assert len(frame) == 6 + 2
  assert list(frame["fold"].iloc[-2:]) == ["mean", "std"]
  np.testing.assert_allclose(frame["er_emotion/war"].iloc[:6], [0.5, 0.5, 0.6, 0.6, 0.7, 0.7])
  assert frame["er_emotion/war"].iloc[-2] == pytest.approx(0.6)
  assert frame["er_emotion/war"].iloc[-1] == pytest.approx(
    np.std([0.5, 0.5, 0.6, 0.6, 0.7, 0.7], ddof=1)
  )
  md = md_path.read_text().splitlines()
  assert md[0] == "| fold | seed | er_emotion/war | er_emotion/uar |"
  assert len(md) == 2 + 6 + 1
  std = np.std([0.5, 0.5, 0.6, 0.6, 0.7, 0.7], ddof=1)
  assert md[-1].startswith(f"| mean ± std |  | 0.600 ± {std:.3f} |")


def test_format_and_direction():
  assert format_mean_std(0.81234, 0.0104) == "0.812 ± 0.010"
  assert format_mean_std(0.8, math.nan, digits=2) == "0.80"
  assert [higher_is_better(m) for m in ("war", "f1_macro", "er_valence/ccc", "ref_uar", "pcc")] == [
    True
  ] * 5
  assert [higher_is_better(m) for m in ("mae", "er_arousal/rmse", "ref_mse", "loss")] == [False] * 4
  assert higher_is_better("epoch") is None


RECORDS = [
  {"model": "EMERT", "protocol": "er7", "metric": "war", "mean": 0.61, "std": 0.02},
  {"model": "EMERT", "protocol": "er7", "metric": "uar", "mean": 0.50, "std": 0.03},
  {"model": "EMERT", "protocol": "er_va", "metric": "er_valence/mae", "mean": 0.30, "std": 0.01},
  {"model": "face_only", "protocol": "er7", "metric": "war", "mean": 0.55, "std": 0.02},
  {"model": "face_only", "protocol": "er7", "metric": "uar", "mean": 0.52, "std": 0.01},
  {
    "model": "face_only",
    "protocol": "er_va",
    "metric": "er_valence/mae",
    "mean": 0.25,
    "std": 0.02,
  },
  {"model": "late_fusion", "protocol": "er7", "metric": "war", "mean": 0.6104, "std": 0.01},
]


def test_comparison_markdown_marks_best_per_column():
  lines = comparison_markdown(RECORDS, digits=2).splitlines()
  assert lines[0] == "| model | er7 war | er7 uar | er_va er_valence/mae |"
  emert, face, late = lines[2:]
  assert "**0.61 ± 0.02**" in emert and "**0.61 ± 0.01**" in late  # tie after rounding
  assert "**0.52 ± 0.01**" in face and "0.50 ± 0.03" in emert and "**0.50" not in emert
  assert "**0.25 ± 0.02**" in face and "**0.30" not in emert  # lower MAE is better
  assert late.endswith("| – | – |")


def test_comparison_latex_and_csv(tmp_path):
  tex = comparison_latex(RECORDS)
  assert tex.startswith(r"\begin{tabular}{lccc}") and r"\toprule" in tex and r"\bottomrule" in tex
  assert r"\multicolumn{2}{c}{er7} & \multicolumn{1}{c}{er\_va} \\" in tex
  assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-4}" in tex
  assert r"\textbf{0.610 $\pm$ 0.020}" in tex and r"\textbf{0.610 $\pm$ 0.010}" in tex  # tie
  assert r"\textbf{0.615" in comparison_latex(RECORDS[:-1] + [{**RECORDS[-1], "mean": 0.615}])
  assert r"face\_only & 0.550 $\pm$ 0.020 & \textbf{0.520 $\pm$ 0.010} & \textbf{0.250" in tex
  paths = write_comparison(RECORDS, tmp_path, name="table")
  assert sorted(p.name for p in paths.values()) == ["table.csv", "table.md", "table.tex"]
  frame = pd.read_csv(paths["csv"], keep_default_na=False)
  assert frame.equals(comparison_frame(RECORDS))
  assert frame.loc[frame.model == "late_fusion", "er7 war"].item() == "**0.610 ± 0.010**"
  with pytest.raises(ValueError):
    comparison_markdown(RECORDS + RECORDS[:1])
