"""tfds_emer.parallel's worker processes: a script without a `__main__` guard runs once."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_script_without_a_main_guard_is_not_rerun_by_the_workers(tmp_path):
  """As a notebook's `.py` twin run with `python script.py`: spawned workers used to run the
  whole script again (the notebook 02's build then waited forever for its own lock)."""
  script = tmp_path / "script.py"
  script.write_text(
    "import os\n"
    "from tfds_emer.parallel import ordered_map\n"
    "print('top level', os.getpid(), flush=True)\n"
    "print(list(ordered_map(abs, [-1, -2, -3, -4], workers=2)), flush=True)\n"
  )
  env = os.environ | {"PYTHONPATH": REPO}
  out = subprocess.run(
    [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert [line.split()[:2] for line in lines[:-1]] == [["top", "level"]], out.stdout
  assert lines[-1] == "[1, 2, 3, 4]"
