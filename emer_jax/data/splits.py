"""Train / validation / test partitions of EMER by fold, with subject-grouped validation.

Fold schemes (PROTOCOLS.md):
- `reference`: the release's own five folds (the `fold` feature, from `emer_set.txt`).
- `subject`: five folds grouped by participant, so nobody is in both train and test.
Validation is always held out of the training part by subject, and test is touched only once.
"""

import dataclasses

import numpy as np

from emer_jax.errors import UserError

NUM_FOLDS = 5


class EmptyFold(UserError, ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Split:
  train: np.ndarray  # sample indices into the source
  val: np.ndarray
  test: np.ndarray


def subject_folds(subjects: np.ndarray, seed: int) -> np.ndarray:
  """Assigns every sample a fold 1..5 such that each subject lies in exactly one fold."""
  unique = np.unique(subjects)
  order = np.random.default_rng(seed).permutation(len(unique))
  fold_of_subject = dict(zip(unique[order], np.arange(len(unique)) % NUM_FOLDS + 1, strict=True))
  return np.array([fold_of_subject[s] for s in subjects], dtype=np.int32)


def make_split(
  folds: np.ndarray,
  subjects: np.ndarray,
  test_fold: int,
  *,
  scheme: str = "reference",
  val_fraction: float = 0.15,
  seed: int = 0,
) -> Split:
  """Test = `test_fold`; validation = about `val_fraction` of the remaining subjects."""
  if scheme == "subject":
    folds = subject_folds(subjects, seed)
  elif scheme != "reference":
    raise ValueError(f"Unknown fold scheme {scheme!r}; expected 'reference' or 'subject'.")
  is_test = folds == test_fold
  if not is_test.any():
    raise EmptyFold(
      f"folds: Test fold {test_fold} holds no samples; the dataset's folds are "
      f"{sorted(set(np.asarray(folds).tolist()))}."
    )
  rest = np.flatnonzero(~is_test)
  rest_subjects = np.unique(subjects[rest])
  num_val = int(round(val_fraction * len(rest_subjects)))
  if val_fraction > 0:
    num_val = min(max(num_val, 1), len(rest_subjects) - 1)
  rng = np.random.default_rng([seed, test_fold])
  val_subjects = rng.choice(rest_subjects, size=num_val, replace=False)
  is_val = np.isin(subjects, val_subjects) & ~is_test
  return Split(
    train=np.flatnonzero(~is_test & ~is_val),
    val=np.flatnonzero(is_val),
    test=np.flatnonzero(is_test),
  )
