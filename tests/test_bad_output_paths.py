"""Every command's output path is checked before anything is created: a file where a folder is
wanted, a folder under a file, or a folder this process cannot write is one line on stderr,
exit status 1, and nothing created (emer_jax.paths). Eval mode with nothing to evaluate
creates nothing either."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# As the command runs from the repository root, with os.access denying write to $DENY (we run
# as root, whom chmod does not stop; the check asks os.access).
_RUN = """
import os, runpy, sys
deny = os.environ.get("DENY")
if deny:
  access = os.access
  os.access = lambda p, m, **k: os.path.abspath(p) != deny and access(p, m, **k)
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


def _command(module, *args, deny=None, prefix="Error: "):
  env = os.environ | ({"DENY": str(deny)} if deny else {})
  out = subprocess.run(
    [sys.executable, "-c", _RUN, module, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1, out.stderr
  assert len(lines) == 1 and lines[0].startswith(prefix), out.stderr
  return lines[0].removeprefix(prefix)


def _bad_places(tmp_path):
  """(a file, a folder this process may not write), in an otherwise empty tmp_path."""
  (tmp_path / "f").write_text("mine")
  (tmp_path / "ro").mkdir()
  return tmp_path / "f", tmp_path / "ro"


def _untouched(tmp_path):
  assert sorted(os.listdir(tmp_path)) == ["f", "ro"]
  assert os.listdir(tmp_path / "ro") == []


def test_predict_output(tmp_path):
  f, ro = _bad_places(tmp_path)
  args = ["--workdir=runs/quickstart", "--input_dir=.", "--picture=false"]
  assert _command("emer_jax.predict", *args, f"--output={f}/out.json") == (
    f"--output {f}/out.json is not in a folder ({f} is a file)."
  )
  assert _command("emer_jax.predict", *args, f"--output={ro}/out.json", deny=ro) == (
    f"--output {ro}/out.json cannot be written (in {ro}): permission denied or a read-only disk."
  )
  assert _command("emer_jax.predict", *args, f"--output={ro}") == (
    f"--output {ro} is a folder, not a file."
  )
  _untouched(tmp_path)


def test_export_output(tmp_path):
  f, ro = _bad_places(tmp_path)
  args = ["--workdir=runs/quickstart"]
  assert _command("emer_jax.export", *args, f"--output={f}") == (
    f"--output {f} is a file, not a folder."
  )
  assert _command("emer_jax.export", *args, f"--output={f}/x") == (
    f"--output {f}/x is not a folder ({f} is a file)."
  )
  assert _command("emer_jax.export", *args, f"--output={ro}/x", deny=ro) == (
    f"--output {ro}/x (the nearest existing folder is {ro}) cannot be written: permission "
    "denied or a read-only disk."
  )
  _untouched(tmp_path)


def test_compare_output(tmp_path):
  f, ro = _bad_places(tmp_path)
  assert _command(
    "emer_jax.compare", str(tmp_path), f"--output={f}/c", prefix="emer_jax.compare: "
  ) == (f"--output {f}/c is not a folder ({f} is a file).")
  assert _command(
    "emer_jax.compare", str(tmp_path), f"--output={ro}", deny=ro, prefix="emer_jax.compare: "
  ) == (f"--output {ro} cannot be written: permission denied or a read-only disk.")
  _untouched(tmp_path)


def test_suite_workdir(tmp_path):
  f, ro = _bad_places(tmp_path)
  args = ["--config=configs/suite.py:small"]
  assert _command("emer_jax.suite", *args, f"--workdir={f}") == (
    f"--workdir {f} is a file, not a folder."
  )
  assert _command("emer_jax.suite", *args, f"--workdir={ro}", deny=ro) == (
    f"--workdir {ro} cannot be written: permission denied or a read-only disk."
  )
  _untouched(tmp_path)


def test_robustness_folder(tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  (workdir / "robustness").write_text("mine")
  assert _command("emer_jax.evaluation.robustness", f"--workdir={workdir}") == (
    f"The robustness folder {workdir}/robustness is a file, not a folder."
  )
  (workdir / "robustness").unlink()
  assert _command("emer_jax.evaluation.robustness", f"--workdir={workdir}", deny=workdir) == (
    f"The robustness folder {workdir}/robustness (the nearest existing folder is {workdir}) "
    "cannot be written: permission denied or a read-only disk."
  )
  assert os.listdir(workdir) == []


EVAL = ["--config=configs/quickstart.py", "--config.mode=eval"]


def test_eval_folder(tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  (workdir / "eval").write_text("mine")
  assert _command("emer_jax.main", *EVAL, f"--workdir={workdir}") == (
    f"The eval folder {workdir}/eval is a file, not a folder."
  )
  assert os.listdir(workdir) == ["eval"]


def test_eval_mode_with_nothing_to_evaluate_creates_nothing(tmp_path):
  run_dir = tmp_path / "w" / "checkpoints" / "fold1_seed0"
  assert _command("emer_jax.main", *EVAL, f"--workdir={tmp_path}/w") == (
    f"Nothing to evaluate: no init_checkpoint is set and there is no checkpoint in {run_dir}/best "
    f"or {run_dir}/latest. Train first, or set --config.init_checkpoint=DIR/model."
  )
  assert os.listdir(tmp_path) == []
