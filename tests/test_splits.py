import numpy as np
import pytest

from emer_jax.data.splits import make_split, subject_folds


def _toy(num_subjects=20, per_subject=10, seed=0):
  rng = np.random.default_rng(seed)
  subjects = np.repeat(np.arange(num_subjects), per_subject)
  folds = rng.integers(1, 6, size=len(subjects))
  return folds, subjects


@pytest.mark.parametrize("scheme", ["reference", "subject"])
def test_parts_are_disjoint_and_cover(scheme):
  folds, subjects = _toy()
  for k in range(1, 6):
    s = make_split(folds, subjects, k, scheme=scheme, val_fraction=0.2, seed=3)
    parts = np.concatenate([s.train, s.val, s.test])
    assert sorted(parts) == list(range(len(folds)))
    # validation is grouped by subject: no validation subject trains
    assert not set(subjects[s.val]) & set(subjects[s.train])
    if scheme == "reference":
      assert (folds[s.test] == k).all() and (folds[s.train] != k).all()
    else:
      assert not set(subjects[s.test]) & (set(subjects[s.train]) | set(subjects[s.val]))


def test_subject_folds_group_subjects_and_balance():
  _, subjects = _toy(num_subjects=23)
  folds = subject_folds(subjects, seed=1)
  for s in np.unique(subjects):
    assert len(set(folds[subjects == s])) == 1
  per_fold = [len(set(subjects[folds == k])) for k in range(1, 6)]
  assert max(per_fold) - min(per_fold) <= 1


def test_split_is_deterministic_and_seeded():
  folds, subjects = _toy()
  a = make_split(folds, subjects, 2, seed=0)
  b = make_split(folds, subjects, 2, seed=0)
  c = make_split(folds, subjects, 2, seed=1)
  assert (a.val == b.val).all()
  assert set(a.val) != set(c.val)


def test_bad_fold_and_scheme_are_named():
  folds, subjects = _toy()
  with pytest.raises(ValueError, match="Test fold 6"):
    make_split(folds, subjects, 6)
  with pytest.raises(ValueError, match="Unknown fold scheme 'loso'"):
    make_split(folds, subjects, 1, scheme="loso")
