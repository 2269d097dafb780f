"""Building `emer` safely: one build at a time per data_dir, killed builds cleaned up, damaged
dataset folders named with the command that rebuilds them, no non-finite statistics."""

import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from emer_jax.data.source import open_source, prepared_builder
from tfds_emer import build, emer, eye_export, locks
from tfds_emer.fake_release import write_release
from tfds_emer.release import ReleaseError
from tfds_emer.sim.config import SimConfig
from tfds_emer.stats import RunningStats

# A build small enough to take about a second once imported; SAMPLES varies its length.
_BUILD = """
import sys
from tfds_emer import build, emer
from tfds_emer.sim.config import SimConfig
n = int(sys.argv[2])
sim = SimConfig(seed=2, num_subjects=max(1, n // 10), num_samples=n)
builder = emer.Emer(config=emer.EmerConfig(name="tiny", face_frames=2, sim=sim), data_dir=sys.argv[1])
print("samples", build.prepare(builder).info.splits["train"].num_examples)
"""


def _tiny(data_dir, samples=2):
  sim = SimConfig(seed=2, num_subjects=max(1, samples // 10), num_samples=samples)
  return emer.Emer(config=emer.EmerConfig(name="tiny", face_frames=2, sim=sim), data_dir=data_dir)


def _start_build(data_dir, samples=2):
  proc = subprocess.Popen(
    [sys.executable, "-c", _BUILD, str(data_dir), str(samples)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  threading.Timer(300, proc.kill).start()  # never hang the suite on a stuck child
  return proc


def test_a_second_build_waits_and_then_uses_the_first(tmp_path):
  builder = _tiny(tmp_path)
  lock = builder.data_path.parent / f"{builder.version}.lock"
  with locks.exclusive(str(lock), "the build of emer/tiny"):  # this process is "the first"
    proc = _start_build(tmp_path)
    waiting = next((line for line in proc.stderr if "Waiting until it is done" in line), "")
    holder = f"dataset emer/tiny/1.0.0 in {tmp_path} is in use by pid {os.getpid()} on host"
    assert holder in waiting, waiting
    builder.download_and_prepare(file_format="array_record")
  info = pathlib.Path(builder.data_dir, "dataset_info.json")
  built = info.stat().st_mtime_ns
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  assert out.strip() == "samples 2"
  assert info.stat().st_mtime_ns == built  # found built, not built again
  assert not list(builder.data_path.parent.glob("incomplete.*"))


def test_a_killed_build_leaves_no_incomplete_folder_after_the_next(tmp_path, caplog):
  config_dir = _tiny(tmp_path).data_path.parent
  proc = _start_build(tmp_path, samples=40)
  while proc.poll() is None and not list(config_dir.glob("incomplete.*")):
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  (stale,) = config_dir.glob("incomplete.*")
  with caplog.at_level(logging.WARNING):
    builder = build.prepare(_tiny(tmp_path, samples=40))
  assert builder.info.splits["train"].num_examples == 40
  assert not stale.exists() and not list(config_dir.glob("incomplete.*"))
  assert "Taking over the lock" in caplog.text
  assert "Removed 1 unfinished build folder(s) of emer/tiny/1.0.0" in caplog.text
  assert str(stale) in caplog.text


def test_an_unbuilt_synthetic_config_is_not_told_to_give_a_manual_dir(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    prepared_builder("emer/synthetic_small", str(tmp_path), prepare=False)
  assert str(e.value).endswith(
    f"Build it first with:\n  python -m tfds_emer.build --config=synthetic_small "
    f"--data_dir={tmp_path}"
  )


@pytest.fixture
def copied_small(small_data_dir, tmp_path):
  data_dir = tmp_path / "data"
  shutil.copytree(small_data_dir, data_dir)
  return data_dir, data_dir / "emer" / "synthetic_small" / "1.0.0"


def _repair_command(message, folder):
  (command,) = [line.strip() for line in message.splitlines() if line.strip().startswith("mv ")]
  assert command.startswith(f"mv {folder} {folder}.broken-")
  return command


def test_a_folder_without_dataset_info_is_named_with_its_rebuild_command(copied_small):
  data_dir, folder = copied_small
  (folder / "dataset_info.json").unlink()
  with pytest.raises(build.DatasetDamaged) as e:
    prepared_builder("emer/synthetic_small", str(data_dir))
  assert str(e.value).startswith(f"{folder} holds no dataset_info.json")
  command = _repair_command(str(e.value), folder)
  assert command.endswith(
    f"&& python -m tfds_emer.build --config=synthetic_small --data_dir={data_dir}"
  )


def test_a_corrupt_shard_is_named_and_the_command_repairs_it(tmp_path):
  release = tmp_path / "release"
  write_release(
    release,
    SimConfig(seed=4, num_subjects=1, num_samples=2),
    frames_per_clip=4,
    eye_format="tsv",
    progress=False,
  )
  data_dir = tmp_path / "data"
  build.build("real", str(data_dir), str(release))
  folder = data_dir / "emer" / "real" / "1.0.0"
  (shard,) = folder.glob("*.array_record-*")
  data = bytearray(shard.read_bytes())
  data[len(data) // 2 : len(data) // 2 + 1000] = bytes(1000)
  shard.write_bytes(data)
  with pytest.raises(build.DatasetDamaged) as e:
    open_source("emer/real", str(data_dir), prepare=False)
  message = str(e.value)
  assert message.startswith(f"{folder}: sample ") and "Corrupted Riegeli" in message
  command = _repair_command(message, folder)
  assert command.endswith(
    f"--config=real --manual_dir=RELEASE --data_dir={data_dir}   (RELEASE: the unpacked EMER "
    "release)"
  )
  command = command.split("   (")[0].replace("RELEASE", str(release))
  out = subprocess.run(command, shell=True, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert len(open_source("emer/real", str(data_dir), prepare=False)) == 2
  (aside,) = folder.parent.glob("1.0.0.broken-*")  # the damaged copy is kept, not deleted
  assert (aside / shard.name).read_bytes() == data


def test_a_non_finite_eye_value_stops_the_build_naming_the_sample(tmp_path):
  builder = _tiny(tmp_path)
  eye = np.zeros((5, eye_export.NUM_COLUMNS), np.float32)
  eye[3, 14] = np.float32(1e308)  # beyond float32: inf
  examples = iter([("7_film_sad", {"eye": eye, "gaze": eye[:, 2:4]})])
  with pytest.raises(ReleaseError) as e:
    list(builder._generate_examples(examples, eye_export.COLUMNS))
  assert e.value.problems[0].startswith(
    "sample 7_film_sad: eye column 'Pupil diameter left', row 3 (0-based, after invalid-row "
    "handling), is inf"
  )


def test_statistics_beyond_float32_are_never_returned():
  stats = RunningStats(2)
  stats.add(np.array([[1.0, 1e39], [2.0, 1e39]]))
  with pytest.raises(ValueError, match="beyond-float32 mean"):
    stats.mean_std()
