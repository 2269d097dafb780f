"""Metric logging: JSON lines plus TensorBoard event files, written by process 0 only.

View the event files with `tensorboard --logdir W/tensorboard` (the `[dev]` extra installs it).
"""

import json
import os

import jax
import numpy as np

from emer_jax import paths
from emer_jax import workdir as workdir_lib
from emer_jax.train.losses import task_loss


def split_losses(index: dict, indices, outputs: dict, head_weights: dict, prefix="val/") -> dict:
  """The task losses on a whole split, named as the train step names its batch losses.

  `index` holds each target's labels for every sample (EmerSource.index), `outputs` the
  model's outputs for `indices` in that order: gives 'val/loss/task/<target>' per head and
  'val/loss/task', their weighted sum.
  """
  out, total = {}, 0.0
  for name, value in outputs.items():
    loss = float(task_loss(name, np.asarray(value, np.float32), np.asarray(index[name])[indices]))
    out[f"{prefix}loss/task/{name}"] = loss
    total += head_weights.get(name, 1.0) * loss
  out[f"{prefix}loss/task"] = total
  return out


def _scalar(value):
  value = np.asarray(value)
  return value.item() if value.size == 1 else value.tolist()


class MetricWriter:
  """Appends `{"step": ..., **tags, **metrics}` lines to `metrics.jsonl` and TensorBoard.

  `tags` (e.g. fold and seed) identify the run. On resume from step S, lines of the same run
  logged after S are dropped first, so a resumed run's log equals an uninterrupted one's. A
  write error (a full disk, no permission) is one line naming the file (`paths.writing`).
  """

  def __init__(self, workdir: str, run_name: str, tags: dict, resume_step: int = 0):
    self._active = jax.process_index() == 0
    self._tags = tags
    self._path = workdir_lib.metrics_path(workdir)
    self._tb_dir = workdir_lib.tensorboard_dir(workdir, run_name)
    self._tb = None
    if not self._active:
      return
    with paths.writing(self._path, "the metrics log"):
      self._truncate(resume_step)
    from tensorboardX import SummaryWriter

    with self._writing_tensorboard():
      # TensorBoard drops the events of steps ≥ purge_step: those after the resumed step, as
      # metrics.jsonl drops its lines (a finished run reopened for its test keeps them all).
      self._tb = SummaryWriter(self._tb_dir, purge_step=resume_step + 1 if resume_step else None)

  def _writing_tensorboard(self):
    return paths.writing(self._tb_dir, "the TensorBoard log")

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
    with paths.writing(self._path, "the metrics log"), open(self._path, "a") as f:
      f.write(json.dumps({"step": int(step), **self._tags, **metrics}) + "\n")
    with self._writing_tensorboard():
      for name, value in metrics.items():
        if isinstance(value, int | float):
          self._tb.add_scalar(name, value, step)

  def write_test(self, step: int, metrics: dict):
    """A run's test metrics, to TensorBoard only (metrics.jsonl holds training and validation),
    at the selected step."""
    if not self._active:
      return
    with self._writing_tensorboard():
      for name, value in metrics.items():
        self._tb.add_scalar(name, float(value), step)

  def write_hparams(self, hparams: dict, metrics: dict, step: int):
    """A sweep run's point (`hparams`) and its results, for TensorBoard's HPARAMS tab."""
    if not self._active:
      return
    from tensorboardX.summary import hparams as hparams_summaries

    values = {
      k: v if isinstance(v, bool | str | int | float) else str(v) for k, v in hparams.items()
    }
    for summary in hparams_summaries(values, metrics):
      self._tb.file_writer.add_summary(summary)
    for name, value in metrics.items():
      self._tb.add_scalar(name, value, step)

  def close(self):
    if self._tb is not None:
      with self._writing_tensorboard():
        self._tb.close()
