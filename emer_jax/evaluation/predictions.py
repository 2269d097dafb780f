"""Per-sample test predictions as CSV, and metrics recomputed from them.

`predictions_fold{k}_seed{s}.csv` has, in order: `sample_id`, `subject_id`; per target `<target>`
(the truth) and `pred_<target>` (a class index, or a value for regression); per
classification target its class probabilities `prob_<target>_<class name>`; and `masked` (1 where
the genuine emotion differs from the displayed one, ER ≠ FER, else 0) when the writer knows it. Rows keep evaluation
order, so reference-style (batch-averaged) metrics can be recomputed from the file as well.
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from emer_jax.evaluation.metrics import reference_style_metrics, target_metrics
from emer_jax.protocols import TARGETS
from emer_jax.workdir import predictions_path  # predictions.predictions_path: notebooks use it

PRED_PREFIX = "pred_"
PROB_PREFIX = "prob_"
MASKED = "masked"


def write_predictions(
  out_dir,
  fold: int,
  seed: int,
  *,
  sample_id,
  subject_id,
  y_true: Mapping,
  y_pred: Mapping,
  probabilities: Mapping | None = None,
  masked=None,
) -> Path:
  """Write one fold × seed's predictions; returns the file's path.

  Args:
    sample_id, subject_id: (N,) identifiers.
    y_true, y_pred: target name -> (N,) truths / predictions. A classification prediction may be
      given as (N, C) scores, stored as their argmax; a regression one as (N,) or (N, 1).
    probabilities: optional {target: (N, C)} per classification target; its columns are named
      `prob_<target>_<class name>` after `TARGETS[target].class_names`.
    masked: optional (N,) booleans, true where ER ≠ FER (the `masked` column).
  """
  frame = {"sample_id": np.asarray(sample_id), "subject_id": np.asarray(subject_id)}
  for name, truth in y_true.items():
    target = TARGETS[name]
    prediction = np.asarray(y_pred[name])
    if target.kind == "classification" and prediction.ndim == 2:
      prediction = prediction.argmax(-1)
    frame[name] = np.asarray(truth).reshape(-1)
    frame[PRED_PREFIX + name] = prediction.reshape(-1)
  for name, probs in (probabilities or {}).items():
    class_names = TARGETS[name].class_names
    probs = np.asarray(probs)
    if probs.shape[-1] != len(class_names):
      raise ValueError(f"{name} has {len(class_names)} classes; probabilities are {probs.shape}.")
    for i, class_name in enumerate(class_names):
      frame[f"{PROB_PREFIX}{name}_{class_name}"] = probs[:, i]
  if masked is not None:
    frame[MASKED] = np.asarray(masked, bool).astype(np.int8)
  lengths = {key: len(column) for key, column in frame.items()}
  if len(set(lengths.values())) != 1:
    raise ValueError(f"Columns differ in length: {lengths}.")
  path = predictions_path(out_dir, fold, seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  pd.DataFrame(frame).to_csv(path, index=False)
  return path


def read_predictions(path) -> pd.DataFrame:
  """The CSV as a frame; identifiers are read as strings."""
  return pd.read_csv(path, dtype={"sample_id": str, "subject_id": str})


def targets_in(frame: pd.DataFrame) -> list[str]:
  """Target names that have both a truth and a `pred_` column."""
  return [c for c in frame.columns if c in TARGETS and PRED_PREFIX + c in frame.columns]


def metrics_from_predictions(predictions, reference_batch_size: int | None = None) -> dict:
  """Pooled metrics per target (`metrics.target_metrics`) from a predictions CSV path or frame.

  With reference_batch_size, each target's dict also gets the `ref_` (batch-averaged) metrics
  of `metrics.reference_style_metrics`, batches taken in row order.
  """
  frame = predictions if isinstance(predictions, pd.DataFrame) else read_predictions(predictions)
  names = targets_in(frame)
  y_true = {n: frame[n].to_numpy() for n in names}
  y_pred = {n: frame[PRED_PREFIX + n].to_numpy() for n in names}
  out = target_metrics(y_true, y_pred)
  if reference_batch_size is not None:
    for n in names:
      kind = TARGETS[n].kind
      out[n] |= reference_style_metrics(y_true[n], y_pred[n], kind, reference_batch_size)
  return out
