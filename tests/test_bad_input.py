"""Bad paths and files: one line on stderr, exit status 1, and nothing created."""

import errno
import os
import subprocess
import sys

import pytest

from emer_jax import paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args):
  out = subprocess.run(
    [sys.executable, "-m", "emer_jax.main", *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1, out.stderr
  assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
  return lines[0]


def _read_only_dir(tmp_path):
  """A folder this process cannot write: chmod 0o500, or (as root, whom chmod does not stop) a
  read-only mount; None where there is none."""
  if os.geteuid() != 0:
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return str(folder)
  for folder in ("/proc/sys", "/sys"):
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
      return folder
  return None


QUICKSTART = "--config=configs/quickstart.py"


def test_a_workdir_that_is_a_file(tmp_path):
  (tmp_path / "f").write_text("mine")
  line = _main(QUICKSTART, f"--workdir={tmp_path}/f")
  assert line == f"Error: --workdir {tmp_path}/f is a file, not a folder."
  line = _main(QUICKSTART, f"--workdir={tmp_path}/f/w")
  assert line == f"Error: --workdir {tmp_path}/f/w is not a folder ({tmp_path}/f is a file)."
  assert os.listdir(tmp_path) == ["f"]


def test_a_data_dir_that_is_a_file_creates_no_workdir(tmp_path):
  (tmp_path / "f").write_text("mine")
  line = _main(QUICKSTART, f"--workdir={tmp_path}/w", f"--config.data_dir={tmp_path}/f")
  assert line == f"Error: --config.data_dir {tmp_path}/f is a file, not a folder."
  assert os.listdir(tmp_path) == ["f"]  # no workdir, no .lock


def test_read_only_workdir_and_data_dir(tmp_path):
  read_only = _read_only_dir(tmp_path)
  if read_only is None:
    pytest.skip("no folder this process cannot write (root without a read-only mount)")
  line = _main(QUICKSTART, f"--workdir={read_only}/w")
  assert line == (
    f"Error: --workdir {read_only}/w (the nearest existing folder is {read_only}) cannot be "
    "written: permission denied or a read-only disk."
  )
  line = _main(QUICKSTART, f"--workdir={tmp_path}/w", f"--config.data_dir={read_only}")
  assert line == (
    f"Error: --config.data_dir {read_only} cannot be written: permission denied or a read-only "
    "disk."
  )
  assert not os.path.exists(tmp_path / "w")


def test_the_writable_check_reads_os_access(tmp_path, monkeypatch):
  """Where no folder is read-only for this process (root), os.access stands in for one."""
  monkeypatch.setattr(os, "access", lambda path, mode: path != str(tmp_path))
  with pytest.raises(paths.PathError, match=f"--workdir {tmp_path}/w .* cannot be written"):
    paths.check_writable_dir(str(tmp_path / "w"), "--workdir")
  paths.check_writable_dir(str(tmp_path / "w"), "--workdir", write=False)


def test_a_built_dataset_may_be_read_only(small_data_dir, monkeypatch):
  from tests.conftest import tiny_run_config

  config = tiny_run_config(small_data_dir)
  monkeypatch.setattr(os, "access", lambda path, mode: path != small_data_dir)
  paths.check_run_paths(config, small_data_dir + "-w")  # built: only read
  config.dataset = "emer/synthetic"  # not built there: it would be written
  with pytest.raises(paths.PathError, match="--config.data_dir .* cannot be written"):
    paths.check_run_paths(config, small_data_dir + "-w")


def test_a_config_file_that_does_not_exist(tmp_path):
  line = _main(f"--config={tmp_path}/nope.py", f"--workdir={tmp_path}/w")
  assert line == f"Error: config file {tmp_path}/nope.py does not exist"
  assert os.listdir(tmp_path) == []


def test_a_config_file_that_raises_names_its_line(tmp_path):
  config = tmp_path / "bad.py"
  config.write_text(
    "from emer_jax.config import base_config\n\n\ndef get_config():\n"
    "  c = base_config('reference')\n  c.batch_size = 1 / 0\n  return c\n"
  )
  line = _main(f"--config={config}", f"--workdir={tmp_path}/w")
  assert line == f"Error: {config} line 6: ZeroDivisionError: division by zero"
  relative = os.path.relpath(config, REPO)  # as typed from the repository root
  line = _main(f"--config={relative}", f"--workdir={tmp_path}/w")
  assert line == f"Error: {relative} line 6: ZeroDivisionError: division by zero"
  assert os.listdir(tmp_path) == ["bad.py"]


def test_a_write_error_names_the_path_and_what(tmp_path):
  with pytest.raises(paths.PathError) as caught:
    with paths.writing(str(tmp_path / "x"), "the model"):
      raise OSError(errno.ENOSPC, "No space left on device")
  assert str(caught.value) == f"Cannot write the model to {tmp_path}/x: no space left on the disk."


def test_a_truncated_pth_is_called_truncated(tmp_path):
  import zipfile

  from emer_jax.convert.torch_pickle import load_torch_file

  path = tmp_path / "model.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 100)
  path.write_bytes(path.read_bytes()[:200])  # a download cut short
  with pytest.raises(ValueError, match=f"^{path} is truncated or damaged: it starts as a zip"):
    load_torch_file(path)


def test_a_full_disk_in_convert_names_the_path_and_leaves_no_temporary_folder(
  tmp_path, monkeypatch
):
  from flax import nnx

  from emer_jax import models
  from emer_jax.convert import __main__ as convert_main

  config = models.get_config("reference")
  model = models.build_model(config, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  monkeypatch.setattr(convert_main, "load_reference_checkpoint", lambda *a, **k: (model, config))

  def full_disk(directory, model):
    os.makedirs(directory)
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(convert_main, "save_model", full_disk)
  with pytest.raises(paths.PathError) as caught:
    convert_main.convert_checkpoint("X.pth", str(tmp_path / "conv"))
  assert str(caught.value) == (
    f"Cannot write the converted model to {tmp_path}/conv: no space left on the disk."
  )
  assert os.listdir(tmp_path) == []


def test_an_init_checkpoint_folder_that_is_no_checkpoint(tmp_path):
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "a.txt").write_text("mine")
  line = _main(QUICKSTART, f"--workdir={tmp_path}/w", f"--config.init_checkpoint={tmp_path}/notes")
  assert line == (
    f"Error: Invalid config: init_checkpoint='{tmp_path}/notes': not an Orbax checkpoint (it "
    "holds no _METADATA); expected a model folder such as DIR/model of emer_jax.convert or "
    "W/checkpoints/fold1_seed0/best/<step>/model."
  )
  assert sorted(os.listdir(tmp_path)) == ["notes"]


def test_model_metadata_of_a_folder_that_is_no_checkpoint(tmp_path):
  from emer_jax.train.checkpoint import CheckpointMismatch, model_metadata

  with pytest.raises(CheckpointMismatch, match="is not an Orbax checkpoint .*holds no _METADATA"):
    model_metadata(str(tmp_path))
