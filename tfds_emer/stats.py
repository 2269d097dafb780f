"""Per-column mean and standard deviation accumulated over a whole dataset."""

import numpy as np

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def non_finite(rows: np.ndarray, columns, where: str) -> str | None:
  """A message naming `where`, the column, the row and the value of the first cell that is
  non-finite or beyond float32 (it would make the statistics, and training, non-finite)."""
  rows = np.asarray(rows)
  bad = ~np.isfinite(rows) | (np.abs(rows.astype(np.float64)) > _FLOAT32_MAX)
  if not bad.any():
    return None
  r, c = np.argwhere(bad)[0]
  return (
    f"{where} column {columns[c]!r}, row {r} (0-based, after invalid-row handling), is "
    f"{rows[r, c]} ({int(bad.sum())} such cell(s) in all); expected finite float32 values "
    f"(|x| <= {_FLOAT32_MAX:.4g}): correct or empty the cell in the sample's eye export."
  )


class RunningStats:
  """Exact mean/std over all rows of many arrays (float64 sums)."""

  def __init__(self, dim: int):
    self.n = 0
    self.sum = np.zeros(dim)
    self.sumsq = np.zeros(dim)

  def add(self, rows: np.ndarray) -> None:
    rows = np.asarray(rows, np.float64)
    self.n += len(rows)
    self.sum += rows.sum(0)
    self.sumsq += np.square(rows).sum(0)

  def mean_std(self) -> tuple[list[float], list[float]]:
    """Mean and std per column; a constant column gets std 1 so normalising leaves it finite.

    Raises ValueError if a statistic is non-finite or beyond float32 (rows added unchecked).
    """
    mean = self.sum / max(self.n, 1)
    std = np.sqrt(np.maximum(self.sumsq / max(self.n, 1) - mean**2, 0))
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1), std, 1.0)
    for name, value in (("mean", mean), ("std", std)):
      if not (np.isfinite(value) & (np.abs(value) <= _FLOAT32_MAX)).all():
        raise ValueError(f"non-finite or beyond-float32 {name} {value.tolist()}; not written.")
    return mean.tolist(), std.tolist()
