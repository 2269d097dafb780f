"""tfds_emer.locks: one holder at a time, named to the second; a dead holder's lock is taken over."""

import logging
import os
import subprocess
import sys

import pytest

from tfds_emer.locks import LockHeld, exclusive

_HOLD = "import os, sys\nfrom tfds_emer.locks import exclusive\nwith exclusive(sys.argv[1], 'W'):\n"


def _python(code, *args):
  return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
  path = str(tmp_path / "lock")
  with exclusive(path, "workdir W"):
    out = _python(_HOLD + "  pass", path)
  assert out.returncode == 1
  assert f"LockHeld: W is in use by pid {os.getpid()} on host" in out.stderr
  assert path in out.stderr


def test_the_same_process_cannot_take_it_twice(tmp_path):
  path = str(tmp_path / "lock")
  with exclusive(path, "W"), pytest.raises(LockHeld, match="in use"):
    with exclusive(path, "W"):
      pass


def test_a_killed_holder_is_taken_over_with_a_warning(tmp_path, caplog):
  path = str(tmp_path / "lock")
  out = _python(_HOLD + "  os.kill(os.getpid(), 9)", path)
  assert out.returncode == -9
  with caplog.at_level(logging.WARNING), exclusive(path, "W"):
    pass
  assert "Taking over the lock of W" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING), exclusive(path, "W"):  # a clean release leaves no name
    pass
  assert not caplog.text
  assert not os.path.exists(path)


def test_a_clean_release_removes_the_lock_file(tmp_path):
  path = str(tmp_path / "lock")
  with exclusive(path, "W"):
    assert str(os.getpid()) in open(path).read()
  assert not os.path.exists(path)
  with exclusive(path, "W"):  # and it can be taken again
    assert os.path.exists(path)
