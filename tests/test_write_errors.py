"""A full disk or a permission error while training writes (checkpoints, logs, reports): one line
naming the path and what was being written, exit status 1, and no temporary folder of the write
that failed; finished checkpoints are kept. Faults injected into the writers of
`python -m emer_jax.main`, run as a user runs it."""

import os
import subprocess
import sys

from tests.test_train import main_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RUN = """
import os, runpy, sys
exec(os.environ["FAULT"])
runpy.run_module("emer_jax.main", run_name="__main__", alter_sys=True)
"""


def _main_with(fault: str, *args) -> str:
  out = subprocess.run(
    [sys.executable, "-c", _RUN, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
    env=os.environ | {"FAULT": fault},
  )
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1, out.stderr
  assert lines and lines[-1].startswith("Error: "), out.stderr
  assert not any("Traceback" in line for line in lines), out.stderr
  return lines[-1]


CHECKPOINT_FULL = """
import errno
import orbax.checkpoint as ocp
save = ocp.CheckpointManager.save
def full(self, step, *args, **kwargs):
  if os.fspath(self.directory).endswith("latest") and step == 4:  # as Orbax: a temporary folder
    os.makedirs(os.path.join(self.directory, "4.orbax-checkpoint-tmp-1234", "state"))
    raise OSError(errno.ENOSPC, "No space left on device")
  return save(self, step, *args, **kwargs)
ocp.CheckpointManager.save = full
"""


def test_a_full_disk_while_checkpointing(small_data_dir, tmp_path):
  workdir = tmp_path / "w"
  line = _main_with(CHECKPOINT_FULL, *main_flags(workdir, small_data_dir))
  latest = workdir / "checkpoints" / "fold1_seed0" / "latest"
  assert (
    line == f"Error: Cannot write the latest checkpoint to {latest}/4: no space left on the disk."
  )
  assert sorted(os.listdir(latest)) == ["2"]  # the finished checkpoint kept, no temporary folder


PLOTS_FULL = """
import errno
from emer_jax.evaluation import plots
def full(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")
plots.plot_confusion = full
"""

TENSORBOARD_DENIED = """
import errno
import tensorboardX
def denied(*args, **kwargs):
  raise PermissionError(errno.EACCES, "Permission denied")
tensorboardX.SummaryWriter.add_scalar = denied
"""


def test_a_full_disk_while_writing_reports(small_data_dir, tmp_path):
  workdir = tmp_path / "w"
  line = _main_with(PLOTS_FULL, *main_flags(workdir, small_data_dir))
  assert line == f"Error: Cannot write the plots to {workdir}/plots: no space left on the disk."
  assert (workdir / "results.json").exists()  # what was written before is kept


def test_a_permission_error_while_logging(small_data_dir, tmp_path):
  workdir = tmp_path / "w"
  line = _main_with(TENSORBOARD_DENIED, *main_flags(workdir, small_data_dir))
  tensorboard = workdir / "tensorboard" / "fold1_seed0"
  assert line == f"Error: Cannot write the TensorBoard log to {tensorboard}: permission denied."
