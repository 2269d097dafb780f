"""The prediction report: OUT.json (its layout is a contract, see README) and OUT.csv beside it.

  {"model": {...what was loaded: from a workdir "workdir", "runs", "steps" (run → checkpoint
              step) and "finished" (false only with --allow_unfinished)...},
   "recordings": [{"id", "frames_total", "frames_with_face", "eye_rows_total", "eye_rows_valid",
                   "eye_format" (the tracker format the export was read as),
                   "heads": {"<target>": {"probabilities": {"<class>": p, ...}, "predicted": c}
                                         or {"value": v}},
                   "gap": true | false | null, "warnings": [...]}]}

`gap` says whether the ER and FER 7-class predictions differ; null without both heads.
"""

import json
import pathlib

import numpy as np
import pandas as pd

from emer_jax.protocols import TARGETS


def heads_entry(outputs: dict, row: int = 0) -> dict:
  """{target: {"probabilities", "predicted"} or {"value"}} for row `row` of model outputs."""
  heads = {}
  for target, values in outputs.items():
    values = np.asarray(values)[row]
    spec = TARGETS[target]
    if spec.kind == "classification":
      probs = {n: float(p) for n, p in zip(spec.class_names, values, strict=True)}
      heads[target] = {"probabilities": probs, "predicted": spec.class_names[int(values.argmax())]}
    else:
      heads[target] = {"value": float(values)}
  return heads


def gap(heads: dict):
  if "er_emotion" not in heads or "fer_emotion" not in heads:
    return None
  return heads["er_emotion"]["predicted"] != heads["fer_emotion"]["predicted"]


def result_entry(info: dict, outputs: dict) -> dict:
  heads = heads_entry(outputs)
  keys = (
    "id",
    "frames_total",
    "frames_with_face",
    "eye_rows_total",
    "eye_rows_valid",
    "eye_format",
  )
  return {k: info[k] for k in keys} | {
    "heads": heads,
    "gap": gap(heads),
    "warnings": info["warnings"],
  }


def source_note(source: dict) -> str:
  """'fold1_seed0 step 49, …' for a workdir's model, 'UNFINISHED' where a run did not finish."""
  if "steps" not in source:
    return ""
  steps = ", ".join(f"{run} step {step}" for run, step in source["steps"].items())
  return steps + ("" if source["finished"] else "; UNFINISHED training, --allow_unfinished")


def csv_path(output) -> pathlib.Path:
  return pathlib.Path(output).with_suffix(".csv")


def picture_path(output, recording_id: str) -> pathlib.Path:
  """OUT_<id>.png beside OUT.json; <id>.png when OUT is named after the recording already."""
  output = pathlib.Path(output)
  name = recording_id if output.stem == recording_id else f"{output.stem}_{recording_id}"
  return output.with_name(f"{name}.png")


def write(output, results: list[dict], model: dict) -> None:
  """Writes OUT.json and OUT.csv (one row per recording: counts, predictions, probabilities)."""
  output = pathlib.Path(output)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps({"model": model, "recordings": results}, indent=2))
  rows = []
  for r in results:
    row = {k: v for k, v in r.items() if k not in ("heads", "warnings")}
    for target, head in r["heads"].items():
      if "value" in head:
        row[target] = head["value"]
        continue
      row[f"pred_{target}"] = head["predicted"]
      row |= {f"prob_{target}_{c}": p for c, p in head["probabilities"].items()}
    row["warnings"] = " | ".join(r["warnings"])
    rows.append(row)
  pd.DataFrame(rows).to_csv(csv_path(output), index=False)
