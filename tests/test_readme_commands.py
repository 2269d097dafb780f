"""Every `python -m` command of README.md's code blocks, run as written from a repository root.

The commands are read from README.md: a README edit that breaks one fails here. Each runs in a
temporary folder that stands for the repository root (`configs/` linked in, `runs/…` and the
placeholders `DATA`, `RELEASE`, `recordings`, `P01.*` made there), with the README's relative
paths, and `--config.…` (or a size flag) appended to make it seconds-long: a tiny model, a few
steps, the session's `emer/synthetic_small`. `export` and `predict --exported` run as the README's
light install (`pip install -e .`, no TensorFlow: tests/light_install). A README command this
plan does not name fails the test; so does a plan step whose command left the README.
"""

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.recording_testing import astronaut_frames, write_video
from tests.test_readme import REPO, command_texts
from tests.test_train import TINY

LIGHT = os.path.join(REPO, "tests", "light_install")
REFERENCE_PTH = os.path.join(
  os.path.dirname(REPO), "shared", "reference", "reference_emert_weights.pth"
)
# tests/test_train.py's 6-step tiny quickstart: its compiled steps are in the suite's cache.
STEPS = [
  "--config.total_steps=6",
  "--config.log_every_steps=2",
  "--config.checkpoint_every_steps=2",
  "--config.eval_every_steps=3",
]
# ER-7's config as the quickstart's model, which is then compiled already.
AS_QUICKSTART = ("--config.model.head_hidden=()", "--config.learning_rate=1e-3", *STEPS, *TINY)
QUICK = ["--config.data_dir=DATA", *STEPS, *TINY]  # appended to runs/quickstart's commands
SMALL_DATA = [
  "--config.dataset=emer/synthetic_small",
  "--config.data_dir=DATA",
  "--config.folds=(1,)",
]


@dataclasses.dataclass
class Step:
  """A README command, found by `match` (a part of its text), run with `extra` appended."""

  match: str
  extra: tuple = ()
  skip: str = ""  # why it does not run here
  light: bool = False  # as the light install
  needs: str = ""  # a file the step needs; skipped without it
  check: object = None  # check(root, the finished process) after it ran


def _evaluated(root, proc):
  out = proc.stdout
  assert "evaluated step" in out and "UNFINISHED" not in out, out
  assert (root / "runs" / "quickstart" / "eval" / "results.json").exists()


def _predicted(root, proc):
  """The report names the workdir, its run, the checkpoint step, and that training finished;
  the command shows its phases and names every file it wrote."""
  out = proc.stdout
  for phase in ("loading the model", "loading checkpoints", "compiling the model", "recording"):
    assert phase in proc.stderr, proc.stderr
  model = json.loads((root / "out" / "P01.json").read_text())["model"]
  step = _best_step(root / "runs" / "quickstart", "fold1_seed0")
  assert model == {
    "workdir": str(root / "runs" / "quickstart"),
    "runs": ["fold1_seed0"],
    "steps": {"fold1_seed0": step},
    "finished": True,
  }
  for line in ("wrote predictions:", "wrote table:", "wrote picture:"):
    assert line in out, out


def _best_step(workdir, run) -> int:
  with open(workdir / "runs" / f"{run}.json") as f:
    return json.load(f)["selected_step"]


def _exported(root, proc):
  out = proc.stdout
  assert f"wrote model: {root / 'exported' / 'model.jax'}" in out, out
  assert f"wrote preprocessing: {root / 'exported' / 'preprocessing.json'}" in out, out


def _served(root, proc):
  model = json.loads((root / "out" / "all.json").read_text())["model"]
  assert model["exported"] == str(root / "exported"), model
  assert model["finished"] is True and set(model["steps"]) == {"fold1_seed0"}, model


def _converted(root):
  """`converted/` as emer_jax.convert writes it (model/, config.json) plus normalisation.json,
  from runs/quickstart's selected checkpoint."""
  from flax import nnx

  from emer_jax import predict
  from emer_jax.train.checkpoint import save_model

  loaded = predict.from_workdir(os.path.join(root, "runs", "quickstart"))
  save_model(os.path.join(root, "converted", "model"), nnx.merge(loaded.graphdef, loaded.states[0]))
  with open(os.path.join(root, "runs", "quickstart", "config.json")) as f:
    model = json.load(f)["model"]
  with open(os.path.join(root, "converted", "config.json"), "w") as f:
    json.dump(model | {"heads": {"er_emotion": 7}}, f)
  with open(os.path.join(root, "converted", "normalisation.json"), "w") as f:
    json.dump(loaded.settings.to_json()["normalisation"], f)


def _swept(root, proc):
  """The sweep's table, its selected point named on stdout, the selected run tested."""
  workdir = root / "runs" / "sweep"
  assert "| 2 | 0.003 |" in (workdir / "sweep.md").read_text()
  assert f"wrote sweep: {workdir / 'sweep.md'}" in proc.stdout, proc.stdout
  selected = json.loads((workdir / "sweep.json").read_text())["selected"]["1"]
  (run,) = json.loads((workdir / "results.json").read_text())["runs"]
  assert run["point"] == selected


def _study_built(root, proc):
  assert (root / "DATA" / "emer_study" / "my_study" / "1.0.0" / "dataset_info.json").is_file()


def _study_trained(root, proc):
  results = json.loads((root / "runs" / "my_study" / "results.json").read_text())
  assert results["targets"] == ["emotion"] and results["config"]["labels"]["emotion"]["classes"]


def _study_predicted(root, proc):
  recordings = json.loads((root / "out" / "my_study.json").read_text())["recordings"]
  assert {r["eye_format"] for r in recordings} == {"tobii", "gazepoint"}, recordings


def _face_only_stand_in(root):
  """compare's second workdir: a copy of runs/er7 stands in for the face-only run."""
  shutil.copytree(os.path.join(root, "runs", "er7"), os.path.join(root, "runs", "er7_face_only"))


# In the order they run (what a command reads, an earlier one wrote); functions prepare files.
PLAN = [
  Step("pytest -q -n 2 tests", skip="the test suite itself"),
  Step("emer_jax.main --config=configs/quickstart.py --workdir=runs/quickstart", QUICK),
  Step(
    "emer_jax.main --config=configs/quickstart.py --workdir=runs/quickstart --config.mode=eval",
    QUICK,
    check=_evaluated,
  ),
  Step("tfds_emer.build --config=synthetic --data_dir=DATA", ("--config=synthetic_small",)),
  Step("tfds_emer.draw --output=emer_sim.png"),
  Step("tfds_emer.fake_release --output=RELEASE", ("--scale=ci", "--num_subjects=5")),
  Step("tfds_emer.validate --manual_dir=RELEASE"),
  Step("tfds_emer.build --config=real --manual_dir=RELEASE --data_dir=DATA"),
  Step("tfds_emer.validate --study=STUDY", skip="the worked example's my_study runs below"),
  Step("tfds_emer.build --study=STUDY --data_dir=DATA", skip="the worked example's runs below"),
  Step("tfds_emer.fake_study --output=my_study", ("--frames=8",)),
  Step("tfds_emer.validate --study=my_study"),
  Step("tfds_emer.build --study=my_study --data_dir=DATA", check=_study_built),
  Step("--config.dataset=emer_study/NAME", skip="placeholders: the worked example runs below"),
  Step("--workdir=runs/NAME --input_dir=RECORDINGS", skip="placeholders: the example runs below"),
  Step(
    "--config.dataset=emer_study/my_study",
    (*STEPS, *TINY),
    check=_study_trained,
  ),
  Step("--workdir=runs/my_study --input_dir=my_study", ("--nopicture",), check=_study_predicted),
  Step(
    "--workdir=runs/er7_real --config.dataset=emer/real --config.data_dir=DATA",
    ("--config.folds=(1,)", *AS_QUICKSTART),
  ),
  Step("--workdir=runs/sweep --sweep=learning_rate=3e-4,1e-3,3e-3", QUICK, check=_swept),
  Step(
    "--workdir=runs/q2",
    ("--config.data_dir=DATA", *STEPS, *TINY),
    skip="the quickstart with overrides: emer_jax.main runs above",
  ),
  Step(
    "emer_jax.main --config=configs/protocols/er7.py --workdir=runs/er7",
    (*SMALL_DATA, *AS_QUICKSTART),
  ),
  Step(
    "--config=configs/protocols/er7.py:small,multitask --workdir=runs/er7_small",
    ("--config.data_dir=DATA", *STEPS, *TINY),
    skip="a protocol config with options: configs are loaded in tests/test_protocols.py",
  ),
  Step(
    "emer_jax.suite --config=configs/suite.py:small",
    (
      '--config.protocols=("er7",)',
      '--config.model_names=("eye_only",)',  # no face encoder: compiles in seconds
      "--config.overrides.num_epochs=1",
    ),
  ),
  Step(
    "emer_jax.suite --config=configs/suite.py:check",
    skip="paper-scale EMER-Sim, half an hour",
  ),
  _face_only_stand_in,
  Step("emer_jax.compare runs/er7 runs/er7_face_only --output=runs/compare"),
  Step("emer_jax.evaluation.robustness --workdir=runs/quickstart", ("--corruptions=remove",)),
  Step("emer_jax.convert --checkpoint=emert.pth --output=runs/emert_pth", needs="emert.pth"),
  Step(
    "--config=configs/converted.py:runs/emert_pth --config.mode=eval",
    ("--config.folds=(1,)",),
    needs="emert.pth",
  ),
  Step("--workdir=runs/quickstart --video=P01.mp4 --eye_export=P01.tsv", check=_predicted),
  Step("--workdir=runs/quickstart --input_dir=recordings --output=out/all.json"),
  Step("--workdir=runs/quickstart --run=fold1_seed0 --frames=P01_frames"),
  _converted,
  Step("emer_jax.predict --checkpoint=converted --channel_order=bgr --data_dir=DATA"),
  Step("emer_jax.export --workdir=runs/quickstart --output=exported", light=True, check=_exported),
  Step("emer_jax.predict --exported=exported --input_dir=recordings", light=True, check=_served),
  Step("--workdir=runs/gpu --config.batch_size=128", skip="for accelerators (batch 128)"),
  Step("emer_jax.main ... --distributed", skip="a multi-host job"),
  Step("emer_jax.benchmark --config=configs/benchmark.py", skip="timing: tests/test_scale.py"),
]
STEPS_ONLY = [s for s in PLAN if isinstance(s, Step)]


def _planned(text: str) -> Step:
  """The step whose `match` is the longest part of `text`."""
  found = [s for s in STEPS_ONLY if s.match in text]
  assert found, f"README command without a step in tests/test_readme_commands.py: {text}"
  return max(found, key=lambda s: len(s.match))


def test_every_readme_command_has_a_step_and_every_step_a_command():
  texts = command_texts()
  planned = [_planned(t) for t in texts]
  unused = [s.match for s in STEPS_ONLY if s not in planned]
  assert not unused, f"steps whose README command is gone: {unused}"


def _root(tmp_path, small_data_dir):
  """A folder standing in for the repository root, with the README's placeholder files."""
  from emer_jax.data.source import open_source
  from emer_jax.predict import samples

  root = tmp_path / "repo"
  root.mkdir()
  os.symlink(os.path.join(REPO, "configs"), root / "configs")
  (root / "DATA" / "emer").mkdir(parents=True)
  os.symlink(
    os.path.join(small_data_dir, "emer", "synthetic_small"),
    root / "DATA" / "emer" / "synthetic_small",
  )
  data = open_source("emer/synthetic_small", small_data_dir, prepare=False)
  samples.write_recording(data.source[0], root, "P01")
  os.rename(root / "P01", root / "P01_frames")
  eye = pd.read_csv(root / "P01.tsv", sep="\t", decimal=",")
  eye.to_excel(root / "P01.xlsx", index=False)
  write_video(root / "P01.mp4", astronaut_frames(30)[0])
  samples.write_recording(data.source[1], root / "recordings", "P02")
  if os.path.exists(REFERENCE_PTH):
    os.symlink(REFERENCE_PTH, root / "emert.pth")
  return root


@pytest.mark.slow
def test_readme_commands_run_as_written(small_data_dir, tmp_path):
  root = _root(tmp_path, small_data_dir)
  commands = {}
  for text in command_texts():
    commands.setdefault(id(_planned(text)), []).append(text)
  env = os.environ | {"PYTHONPATH": REPO}
  for step in PLAN:
    if not isinstance(step, Step):
      step(str(root))
      continue
    if step.skip or (step.needs and not os.path.exists(root / step.needs)):
      continue
    for text in commands[id(step)]:
      argv = [sys.executable, *shlex.split(text)[1:], *step.extra]
      run_env = env | {"PYTHONPATH": f"{REPO}{os.pathsep}{LIGHT}"} if step.light else env
      start = time.monotonic()
      out = subprocess.run(argv, cwd=root, env=run_env, capture_output=True, text=True, timeout=900)
      print(f"{time.monotonic() - start:5.0f} s  {text}", flush=True)
      assert out.returncode == 0, f"{text}\n{out.stdout}{out.stderr}"
      assert "Traceback" not in out.stderr, f"{text}\n{out.stderr}"
      assert "CheckpointManagerOptions" not in out.stderr, f"{text}\n{out.stderr}"  # Orbax's
      if step.check:
        step.check(root, out)
