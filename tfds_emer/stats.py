"""Per-column mean and standard deviation accumulated over a whole dataset."""

import numpy as np


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
    """Mean and std per column; a constant column gets std 1 so normalising leaves it finite."""
    mean = self.sum / max(self.n, 1)
    std = np.sqrt(np.maximum(self.sumsq / max(self.n, 1) - mean**2, 0))
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1), std, 1.0)
    return mean.tolist(), std.tolist()
