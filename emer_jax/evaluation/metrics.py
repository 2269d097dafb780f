"""Test-set metrics, pooled over a whole fold (PROTOCOLS.md), plus the authors' batch-averaged variant.

Pooled metrics (`classification_metrics`, `regression_metrics`, `target_metrics`) are the ones
this project reports. `reference_style_metrics` reproduces the authors' evaluation scripts, which
average per-batch scores; its keys start with `ref_` so the two can never be confused.
Plain NumPy: these run on host over gathered predictions.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from emer_jax.protocols import TARGETS

REFERENCE_PREFIX = "ref_"


def _labels(y, num_classes=None, name="labels"):
  """Integer labels; scores of shape (N, C) become their argmax."""
  y = np.asarray(y)
  if y.ndim == 2:
    y = y.argmax(-1)
  y = y.reshape(-1)
  if y.size and not np.all(y == np.round(y)):
    raise ValueError(f"{name} must be integer class indices.")
  y = y.astype(np.int64)
  if num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{name} must lie in [0, {num_classes}); got [{y.min()}, {y.max()}].")
  return y


def confusion_matrix(y_true, y_pred, num_classes):
  """(num_classes, num_classes) counts; rows are the truth, columns the prediction."""
  y_true = _labels(y_true, num_classes, "y_true")
  y_pred = _labels(y_pred, num_classes, "y_pred")
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}.")
  return batched_confusion(y_true, y_pred, num_classes)


def batched_confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """Confusion matrices (..., C, C) of integer label arrays (..., N), e.g. bootstrap resamples."""
  batch = y_true.shape[:-1]
  offset = np.arange(int(np.prod(batch))).reshape(*batch, 1) * num_classes**2
  cells = offset + y_true * num_classes + y_pred
  counts = np.bincount(cells.reshape(-1), minlength=int(np.prod(batch)) * num_classes**2)
  return counts.reshape(*batch, num_classes, num_classes)


def _per_class(confusion):
  """Support, recall (NaN where support is 0) and F1 = 2TP / (2TP + FP + FN) per class, over
  the last two axes of (..., C, C) confusions."""
  tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
  support = confusion.sum(-1)
  predicted = confusion.sum(-2)
  with np.errstate(invalid="ignore", divide="ignore"):
    recall = np.where(support > 0, tp / support, np.nan)
    denominator = support + predicted
    f1 = np.where(denominator > 0, 2 * tp / denominator, np.nan)
  return support, recall, f1


def classification_scores(confusion) -> dict[str, np.ndarray]:
  """`war`, `uar`, `f1_weighted`, `f1_macro` (see `classification_metrics`) of confusion matrices
  (..., C, C), as arrays of shape (...); NaN where a matrix is empty."""
  support, recall, f1 = _per_class(confusion)
  total = support.sum(-1)
  present = support > 0
  num_present = present.sum(-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return {
      "war": np.trace(confusion, axis1=-2, axis2=-1) / total,
      "uar": np.where(present, recall, 0).sum(-1) / num_present,
      "f1_weighted": np.where(present, f1 * support, 0).sum(-1) / total,
      "f1_macro": np.where(present, f1, 0).sum(-1) / num_present,
    }


def classification_metrics(y_true, y_pred, num_classes: int) -> dict:
  """Pooled classification metrics over one test fold.

  Args:
    y_true: (N,) integer labels.
    y_pred: (N,) predicted labels, or (N, num_classes) scores (their argmax is taken).
    num_classes: size of the label space.

  Returns:
    `war`: accuracy (weighted average recall). `uar`: mean recall over the classes present in
    y_true. `f1_weighted`: support-weighted F1. `f1_macro`: mean F1 over the classes present in
    y_true, i.e. sklearn's `f1_score(..., average='macro', labels=np.unique(y_true))`; a class
    that is only predicted is not a term of its own: its false positives already lower the recall
    and F1 of the classes they truly belong to.
    `per_class_recall`: list of num_classes floats, NaN for classes absent from y_true.
    `confusion`: num_classes × num_classes nested list of counts, rows = truth.
    Scalars are NaN when y_true is empty.
  """
  confusion = confusion_matrix(y_true, y_pred, num_classes)
  _, recall, _ = _per_class(confusion)
  scores = {k: float(v) for k, v in classification_scores(confusion).items()}
  return {
    **scores,
    "per_class_recall": [float(r) for r in recall],
    "confusion": confusion.tolist(),
  }


def _values(y, name):
  y = np.asarray(y, dtype=np.float64)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise ValueError(f"{name} must have shape (N,) or (N, 1); got {y.shape}.")
  return y


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
  """`mae`, `mse`, `rmse`, `pcc`, `ccc` (see `regression_metrics`) over the last axis of float
  arrays (..., N), e.g. bootstrap resamples, as arrays of shape (...)."""
  error = y_pred - y_true
  mse = np.mean(error**2, -1)
  # A series whose values are all equal has exactly zero deviation (no rounding residue).
  constant_true, constant_pred = np.ptp(y_true, -1) == 0, np.ptp(y_pred, -1) == 0
  mean_true = np.where(constant_true, y_true[..., 0], y_true.mean(-1))
  mean_pred = np.where(constant_pred, y_pred[..., 0], y_pred.mean(-1))
  dev_true, dev_pred = y_true - mean_true[..., None], y_pred - mean_pred[..., None]
  var_true, var_pred = np.mean(dev_true**2, -1), np.mean(dev_pred**2, -1)
  cov = np.mean(dev_true * dev_pred, -1)
  ccc_denominator = var_true + var_pred + (mean_true - mean_pred) ** 2
  with np.errstate(invalid="ignore", divide="ignore"):
    pcc = np.where(constant_true | constant_pred, np.nan, cov / np.sqrt(var_true * var_pred))
    ccc = np.where(ccc_denominator > 0, 2 * cov / ccc_denominator, np.nan)
  return {
    "mae": np.mean(np.abs(error), -1),
    "mse": mse,
    "rmse": np.sqrt(mse),
    "pcc": pcc,
    "ccc": ccc,
  }


def regression_metrics(y_true, y_pred) -> dict:
  """Pooled regression metrics over one test fold.

  `mae`, `mse`, `rmse`; `pcc`: Pearson correlation; `ccc`: Lin's concordance correlation
  2·cov / (var_true + var_pred + (mean_true − mean_pred)²) with population (1/N) moments.
  Constant inputs: `pcc` is NaN when either side is constant (the correlation is undefined);
  `ccc` stays defined (0 when exactly one side is constant) and is NaN only when both sides are
  the same constant. Everything is NaN for empty input. No warnings are raised for these cases.
  Inputs of shape (N,) or (N, 1).
  """
  y_true, y_pred = _values(y_true, "y_true"), _values(y_pred, "y_pred")
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}.")
  if y_true.size == 0:
    return dict.fromkeys(("mae", "mse", "rmse", "pcc", "ccc"), float("nan"))
  return {k: float(v) for k, v in regression_scores(y_true, y_pred).items()}


def target_metrics(y_true: Mapping, y_pred: Mapping) -> dict[str, dict]:
  """Pooled metrics per target: {'er_valence': {'mae': ...}, ...}.

  y_true and y_pred map target names (keys of `emer_jax.protocols.TARGETS`) to arrays; a
  classification prediction may be labels or (N, C) scores.
  """
  out = {}
  for name, truth in y_true.items():
    target = TARGETS[name]
    if target.kind == "classification":
      out[name] = classification_metrics(truth, y_pred[name], len(target.class_names))
    else:
      out[name] = regression_metrics(truth, y_pred[name])
  return out


SUBSET_METRICS = {"classification": ("war", "uar"), "regression": ("mae",)}
SUBSETS = ("masked", "unmasked")


def subset_rows(masked) -> dict[str, np.ndarray]:
  """{'masked': rows, 'unmasked': rows}: the two subsets the `…_masked`/`…_unmasked` metrics
  are computed on, from (N,) `masked` (ER ≠ FER)."""
  masked = np.asarray(masked, bool)
  return dict(zip(SUBSETS, (masked, ~masked), strict=True))


def masked_metrics(y_true: Mapping, y_pred: Mapping, masked) -> dict[str, dict]:
  """Each target's headline metrics on the masked samples and on the others.

  `masked` (N,) is true where the genuine emotion differs from the displayed one (ER 7-class ≠
  FER 7-class), the samples on which the papers' thesis is tested: a face-only model should fail
  there. Returns {target: {'war_masked': …, 'war_unmasked': …}} with the `SUBSET_METRICS` of the
  target's kind; a subset without samples is left out, and every one when `masked` is None
  (a dataset without both views).
  """
  out = {name: {} for name in y_true}
  if masked is None:
    return out
  for subset, rows in subset_rows(masked).items():
    if not rows.any():
      continue
    pooled = target_metrics(
      {n: np.asarray(v)[rows] for n, v in y_true.items()},
      {n: np.asarray(y_pred[n])[rows] for n in y_true},
    )
    for name, values in pooled.items():
      for metric in SUBSET_METRICS[TARGETS[name].kind]:
        out[name][f"{metric}_{subset}"] = values[metric]
  return out


def fold_metrics(y_true: Mapping, y_pred: Mapping, masked) -> dict[str, dict]:
  """What a run reports for its test fold: `target_metrics` with each target's
  `masked_metrics` added."""
  out = target_metrics(y_true, y_pred)
  for name, values in masked_metrics(y_true, y_pred, masked).items():
    out[name] |= values
  return out


def _batch_classification(y_true, y_pred):
  """What the authors' per-batch sklearn calls return: labels are those in y_true ∪ y_pred.

  recall_score(average='weighted') is accuracy; recall_score(average='macro', zero_division=0)
  averages recall over that union, a class only predicted counting 0; f1_score(average='weighted')
  weights F1 by support in y_true.
  """
  labels = np.union1d(y_true, y_pred)
  index = {label: i for i, label in enumerate(labels)}
  confusion = confusion_matrix([index[v] for v in y_true], [index[v] for v in y_pred], len(labels))
  support, recall, f1 = _per_class(confusion)
  present = support > 0
  return {
    "war": np.trace(confusion) / support.sum(),
    "uar": np.nan_to_num(recall).mean(),
    "f1_weighted": (f1[present] * support[present]).sum() / support.sum(),
  }


def _batch_regression(y_true, y_pred):
  mse = np.mean((y_pred - y_true) ** 2)
  return {"mae": np.mean(np.abs(y_pred - y_true)), "mse": mse, "rmse": np.sqrt(mse)}


def reference_style_metrics(
  y_true, y_pred, kind: str, batch_size: int = 16, num_classes: int | None = None
) -> dict:
  """The authors' aggregation: the unweighted mean of per-batch scores, batches taken in
  evaluation order (the last may be short and still counts as one batch).

  Classification keys: `ref_war`, `ref_uar`, `ref_f1_weighted` (per batch, the classes are
  those in that batch's truth or predictions, see `_batch_classification`). Regression keys:
  `ref_mae`, `ref_mse`, `ref_rmse` (the mean of each batch's sqrt(MSE), not sqrt of the mean).
  These depend on batch size and sample order and are for comparison with the authors' numbers
  only; never report them as pooled metrics.

  Args:
    y_true, y_pred: as for `classification_metrics` / `regression_metrics`.
    kind: 'classification' or 'regression'.
    batch_size: the evaluation batch size (16 in the authors' scripts).
    num_classes: optional; when given, labels are checked to lie in [0, num_classes).
  """
  if kind == "classification":
    y_true = _labels(y_true, num_classes, "y_true")
    y_pred = _labels(y_pred, num_classes, "y_pred")
    per_batch = _batch_classification
  elif kind == "regression":
    y_true, y_pred = _values(y_true, "y_true"), _values(y_pred, "y_pred")
    per_batch = _batch_regression
  else:
    raise ValueError(f"kind must be 'classification' or 'regression'; got {kind!r}.")
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}.")
  if y_true.size == 0:
    raise ValueError("reference_style_metrics needs at least one sample.")
  batches = [
    per_batch(y_true[i : i + batch_size], y_pred[i : i + batch_size])
    for i in range(0, len(y_true), batch_size)
  ]
  return {REFERENCE_PREFIX + key: float(np.mean([b[key] for b in batches])) for key in batches[0]}


def flatten_scalars(metrics: Mapping, prefix: str = "") -> dict[str, float]:
  """Scalar entries of a (possibly per-target nested) metrics dict, nested keys joined by '/'.

  Lists such as `per_class_recall` and `confusion` are left out.
  """
  out = {}
  for key, value in metrics.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      out.update(flatten_scalars(value, f"{name}/"))
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
      out[name] = float(value)
  return out


def summarize(runs: Sequence[Mapping]) -> dict[str, dict[str, float]]:
  """Mean and sample standard deviation (ddof=1) of every scalar metric over runs.

  Args:
    runs: one metrics dict per fold × seed (nested per target or flat), all runs pooled.

  Returns:
    {'mean': {...}, 'std': {...}} keyed by `flatten_scalars` names. The std is NaN for a single
    run; a NaN in any run makes that metric's mean and std NaN (nothing is silently dropped).
    A metric missing from some runs is summarised over the runs that have it.
  """
  if not runs:
    raise ValueError("summarize needs at least one run.")
  flat = [flatten_scalars(run) for run in runs]
  names = list(dict.fromkeys(name for run in flat for name in run))
  mean, std = {}, {}
  for name in names:
    values = np.array([run[name] for run in flat if name in run])
    mean[name] = float(values.mean())
    std[name] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
  return {"mean": mean, "std": std}
