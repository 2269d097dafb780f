"""Metric logging: JSON lines plus TensorBoard event files, written by process 0 only."""

import json
import os

import jax
import numpy as np


def _scalar(value):
  value = np.asarray(value)
  return value.item() if value.size == 1 else value.tolist()


class MetricWriter:
  """Appends `{"step": ..., **tags, **metrics}` lines to `metrics.jsonl` and TensorBoard.

  `tags` (e.g. fold and seed) identify the run. On resume from step S, lines of the same run
  logged after S are dropped first, so a resumed run's log equals an uninterrupted one's.
  """

  def __init__(self, workdir: str, run_name: str, tags: dict, resume_step: int = 0):
    self._active = jax.process_index() == 0
    self._tags = tags
    self._path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self._active:
      return
    self._truncate(resume_step)
    from tensorboardX import SummaryWriter

    self._tb = SummaryWriter(
      os.path.join(workdir, "tensorboard", run_name), purge_step=resume_step or None
    )

  def _truncate(self, resume_step: int):
    if not os.path.exists(self._path):
      return
    with open(self._path) as f:
      lines = f.readlines()
    keep = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut short by a kill
      same_run = all(record.get(k) == v for k, v in self._tags.items())
      if not (same_run and record["step"] > resume_step):
        keep.append(json.dumps(record) + "\n")
    tmp = self._path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, self._path)

  def write(self, step: int, metrics: dict):
    if not self._active:
      return
    metrics = {k: _scalar(v) for k, v in metrics.items()}
    with open(self._path, "a") as f:
      f.write(json.dumps({"step": int(step), **self._tags, **metrics}) + "\n")
    for name, value in metrics.items():
      if isinstance(value, int | float):
        self._tb.add_scalar(name, value, step)

  def close(self):
    if self._tb is not None:
      self._tb.close()
