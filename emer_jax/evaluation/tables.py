"""Result tables: one run directory's per-fold results, and the models × protocols comparison.

A run's results dict is `{'runs': [{'fold': k, 'seed': s, 'metrics': {...}}, ...], 'mean': {...},
'std': {...}}` (see `metrics.summarize`), optionally with `ci95: {'target/metric': [lo, hi]}`
(`bootstrap.results_intervals`); metrics may be nested per target and are flattened to
'target/metric' columns. Only scalar metrics are tabulated (not confusion matrices).

In the comparison, a column's best mean is bold; where the records carry `tied` (a paired
bootstrap test, `bootstrap.mark_ties`), every model not significantly different from the best is
bold as well.
"""

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from emer_jax.evaluation.metrics import REFERENCE_PREFIX, flatten_scalars

_HIGHER_IS_BETTER = ("war", "uar", "f1", "pcc", "ccc", "acc")
_LOWER_IS_BETTER = ("mae", "mse", "rmse", "loss")


def higher_is_better(metric: str) -> bool | None:
  """True for war/uar/f1*/pcc/ccc, False for mae/mse/rmse/loss, None if unknown.

  The last '/'-separated part of the name decides, without a `ref_` prefix: 'er_valence/ccc'
  and 'ref_uar' are both higher-is-better.
  """
  base = metric.rsplit("/", 1)[-1].removeprefix(REFERENCE_PREFIX)
  if base.startswith(_HIGHER_IS_BETTER):
    return True
  if base.startswith(_LOWER_IS_BETTER):
    return False
  return None


def format_mean_std(mean: float, std: float, digits: int = 3, pm: str = "±") -> str:
  """'0.812 ± 0.010'; just the mean when std is NaN (a single run)."""
  if math.isnan(std):
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} {pm} {std:.{digits}f}"


SUMMARY_ROWS = ("mean", "std", "ci95_lo", "ci95_hi")


def results_frame(results: Mapping) -> pd.DataFrame:
  """One row per run (fold, seed, scalar metrics), then a 'mean' and a 'std' row, and with
  `ci95` in results a 'ci95_lo' and a 'ci95_hi' row (the 95 % interval of the mean).

  In those rows the `fold` column holds the row's name and `seed` is empty.
  """
  rows = [
    {"fold": run["fold"], "seed": run["seed"], **flatten_scalars(run["metrics"])}
    for run in results["runs"]
  ]
  rows.append({"fold": "mean", "seed": "", **flatten_scalars(results["mean"])})
  rows.append({"fold": "std", "seed": "", **flatten_scalars(results["std"])})
  if "ci95" in results:
    for side, row in ((0, "ci95_lo"), (1, "ci95_hi")):
      bounds = {k: v[side] for k, v in results["ci95"].items()}
      rows.append({"fold": row, "seed": "", **flatten_scalars(bounds)})
  return pd.DataFrame(rows)


def results_markdown(results: Mapping, digits: int = 3) -> str:
  """Markdown table: a row per fold/seed, a 'mean ± std' row and, with `ci95` in results, a
  '95 % CI' row ([lo, hi] of the mean, – for metrics without an interval)."""
  frame = results_frame(results)
  names = [c for c in frame.columns if c not in ("fold", "seed")]
  summary = frame["fold"].isin(SUMMARY_ROWS)
  runs, rows = frame[~summary], frame[summary].set_index("fold")
  mean, std = rows.loc["mean"], rows.loc["std"]
  lines = [
    "| " + " | ".join(["fold", "seed", *names]) + " |",
    "| " + " | ".join(["---"] * (len(names) + 2)) + " |",
  ]
  for _, row in runs.iterrows():
    cells = [str(row["fold"]), str(row["seed"])]
    cells += [f"{row[n]:.{digits}f}" for n in names]
    lines.append("| " + " | ".join(cells) + " |")
  cells = ["mean ± std", ""] + [format_mean_std(mean[n], std[n], digits) for n in names]
  lines.append("| " + " | ".join(cells) + " |")
  if "ci95_lo" in rows.index:
    lo, hi = rows.loc["ci95_lo"], rows.loc["ci95_hi"]
    cells = ["95 % CI", ""] + [format_interval(lo[n], hi[n], digits) for n in names]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def format_interval(lo, hi, digits: int = 3) -> str:
  """'[0.790, 0.834]'; '–' when either end is missing (NaN)."""
  lo, hi = float(lo), float(hi)
  if math.isnan(lo) or math.isnan(hi):
    return "–"
  return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def write_results(results: Mapping, out_dir, digits: int = 3) -> tuple[Path, Path]:
  """Write `results.csv` (full precision) and `results.md` into out_dir; returns their paths."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
  results_frame(results).to_csv(csv_path, index=False)
  md_path.write_text(results_markdown(results, digits))
  return csv_path, md_path


def _comparison_grid(records: Iterable[Mapping], digits: int):
  """Rows (models), columns ((protocol, metric), grouped by protocol) and cells (text, is_best).

  Order is first appearance in records. Where every record of a column carries `tied` (a paired
  test's verdict, `bootstrap.mark_ties`), the marked cells are those; otherwise best is judged on
  the displayed (rounded) means, so ties are all marked. Columns whose metric direction is
  unknown get no mark.
  """
  values, tied = {}, {}
  for r in records:
    key = (r["model"], r["protocol"], r["metric"])
    if key in values:
      raise ValueError(f"Duplicate comparison record for {key}.")
    values[key] = (float(r["mean"]), float(r["std"]))
    if "tied" in r:
      tied[key] = bool(r["tied"])
  models = list(dict.fromkeys(m for m, _, _ in values))
  protocols = list(dict.fromkeys(p for _, p, _ in values))
  columns = [
    (p, metric) for p in protocols for metric in dict.fromkeys(k for _, q, k in values if q == p)
  ]
  cells = {}
  for protocol, metric in columns:
    present = {m: values[(m, protocol, metric)] for m in models if (m, protocol, metric) in values}
    shown = {m: round(mean, digits) for m, (mean, _) in present.items() if not math.isnan(mean)}
    direction = higher_is_better(metric)
    best = None
    if shown and direction is not None:
      best = max(shown.values()) if direction else min(shown.values())
    tested = all((m, protocol, metric) in tied for m in present)
    for m, (mean, std) in present.items():
      mark = tied[(m, protocol, metric)] if tested else shown.get(m) == best
      cells[(m, (protocol, metric))] = (format_mean_std(mean, std, digits), mark)
  return models, columns, cells


def marks_ties(records: Iterable[Mapping]) -> bool:
  """Whether any record carries a significance verdict (`tied`)."""
  return any("tied" in r for r in records)


TIES_NOTE = (
  "Bold: the best mean of each column and every model not significantly different from it "
  "(paired bootstrap over the same test samples, 95 %; docs/protocols.md)."
)


def comparison_markdown(records: Iterable[Mapping], digits: int = 3) -> str:
  """Markdown table, a row per model and a column per protocol × metric; best in bold."""
  models, columns, cells = _comparison_grid(records, digits)
  lines = [
    "| " + " | ".join(["model", *(f"{p} {m}" for p, m in columns)]) + " |",
    "| " + " | ".join(["---"] + [":---:"] * len(columns)) + " |",
  ]
  for model in models:
    row = [model]
    for col in columns:
      text, best = cells.get((model, col), ("–", False))
      row.append(f"**{text}**" if best else text)
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


def comparison_frame(records: Iterable[Mapping], digits: int = 3) -> pd.DataFrame:
  """The comparison as a frame of 'mean ± std' strings; best cells wrapped in '**'."""
  models, columns, cells = _comparison_grid(records, digits)
  data = {"model": models}
  for col in columns:
    column = []
    for model in models:
      text, best = cells.get((model, col), ("", False))
      column.append(f"**{text}**" if best else text)
    data[f"{col[0]} {col[1]}"] = column
  return pd.DataFrame(data)


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
  "~": r"\textasciitilde{}",
  "^": r"\textasciicircum{}",
  "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
  return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def comparison_latex(records: Iterable[Mapping], digits: int = 3) -> str:
  """A booktabs `tabular` (needs \\usepackage{booktabs}): protocols as spanning headers,
  metrics beneath, `mean $\\pm$ std` cells, best per column in \\textbf."""
  models, columns, cells = _comparison_grid(records, digits)
  protocols = list(dict.fromkeys(p for p, _ in columns))
  spans = [sum(1 for p, _ in columns if p == q) for q in protocols]
  lines = [r"\begin{tabular}{l" + "".join("c" * n for n in spans) + "}", r"\toprule"]
  header = [""] + [
    rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(p)}}}" for p, n in zip(protocols, spans, strict=True)
  ]
  lines.append(" & ".join(header) + r" \\")
  rules, start = [], 2
  for n in spans:
    rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
    start += n
  lines.append(" ".join(rules))
  lines.append(" & ".join(["Model", *(latex_escape(m) for _, m in columns)]) + r" \\")
  lines.append(r"\midrule")
  for model in models:
    row = [latex_escape(model)]
    for col in columns:
      text, best = cells.get((model, col), ("--", False))
      text = text.replace("±", r"$\pm$")
      row.append(rf"\textbf{{{text}}}" if best else text)
    lines.append(" & ".join(row) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def write_comparison(
  records: Iterable[Mapping], out_dir, name: str = "comparison", digits: int = 3
) -> dict[str, Path]:
  """Write `<name>.md`, `<name>.csv` and `<name>.tex`; returns {'md': path, 'csv': ..., 'tex': ...}."""
  records = list(records)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "csv", "tex")}
  text = comparison_markdown(records, digits)
  if marks_ties(records):
    text += "\n" + TIES_NOTE + "\n"
  paths["md"].write_text(text)
  comparison_frame(records, digits).to_csv(paths["csv"], index=False)
  paths["tex"].write_text(comparison_latex(records, digits))
  return paths
