"""Sweeps (8 fake CPU devices, the data on the devices): points declared with `h` or --sweep, a
point trained in a sweep equals it trained alone, the selection is honest, a killed sweep
resumes bit-exactly and a changed sweep is refused."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from emer_jax import sweep as h
from emer_jax import workdir as workdir_lib
from emer_jax.errors import UserError
from emer_jax.train import trainer
from tests import faults
from tests.test_parallel import _config, _losses, _main, _results, together  # noqa: F401
from tests.test_train import REPO

LEARNING_RATES = (1e-3, 3e-3)  # 1e-3: the quickstart's, as `together` trains it


def _hyper_file(tmp_path) -> str:
  path = tmp_path / "swept.py"
  path.write_text(
    "from configs.quickstart import get_config  # noqa: F401\n\n\n"
    "def get_hyper(h):\n"
    f"  return h.sweep('config.learning_rate', {list(LEARNING_RATES)})\n"
  )
  return str(path)


def test_h_get_hyper_and_sweep_flags_give_the_same_points(tmp_path):
  lr = h.sweep("config.learning_rate", [1e-3, 3e-3])
  drop = h.sweep("model.modality_dropout", [0.0, 0.3])
  assert h.product([lr, drop]) == [
    {"config.learning_rate": a, "model.modality_dropout": b} for a in (1e-3, 3e-3) for b in (0, 0.3)
  ]
  assert h.zipit([lr, drop]) == [
    {"config.learning_rate": 1e-3, "model.modality_dropout": 0.0},
    {"config.learning_rate": 3e-3, "model.modality_dropout": 0.3},
  ]
  flags = ["learning_rate=1e-3,3e-3", "config.model.modality_dropout=0.0,0.3"]
  assert h.normalised(h.from_flags(flags)) == h.normalised(h.product([lr, drop]))
  from_file = h.points_of(_hyper_file(tmp_path), None)
  assert h.normalised(from_file) == h.normalised(h.from_flags(["learning_rate=1e-3,3e-3"]))
  assert h.points_of(_hyper_file(tmp_path), ["weight_decay=0,1e-4"]) == [
    {"weight_decay": 0},
    {"weight_decay": 1e-4},
  ]
  with pytest.raises(UserError, match="equal"):
    h.zipit([lr, h.sweep("loss.alpha", [0.1])])


@pytest.mark.parametrize(
  "point, message",
  [
    ({"learning_rat": 1e-3}, "Unknown config key 'learning_rat': did you mean learning_rate"),
    ({"learning_rate": "fast"}, "sweep key 'learning_rate': value 'fast' does not fit"),
    ({"folds": (1,)}, "sweep key 'folds': cannot be swept"),
    ({"learning_rate": -1.0}, "sweep point learning_rate=-1.0: learning_rate"),
    ({"loss.head_weights.er_emoton": 2.0}, "'loss.head_weights.er_emoton': expected a target"),
  ],
)
def test_a_bad_point_is_one_line_and_creates_nothing(small_data_dir, tmp_path, point, message):
  workdir = tmp_path / "w"
  with pytest.raises(UserError, match=message):
    trainer.train_and_evaluate(_config(small_data_dir), str(workdir), points=[point])
  assert not workdir.exists()


def test_the_command_names_a_bad_sweep_key_in_one_line(small_data_dir, tmp_path):
  workdir = tmp_path / "w"
  out = subprocess.run(
    [sys.executable, "-m", "emer_jax.main", "--config=configs/quickstart.py",
     f"--workdir={workdir}", f"--config.data_dir={small_data_dir}", "--sweep=learning_rat=1e-3,3e-3"],
    cwd=REPO, capture_output=True, text=True,
  )  # fmt: skip
  assert out.returncode == 1, out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
    "Error: sweep: Unknown config key 'learning_rat': did you mean learning_rate?"
  ), out.stderr
  assert not workdir.exists()


@pytest.fixture(scope="module")
def swept(small_data_dir, tmp_path_factory):
  """A sweep of two learning rates over folds (1, 4) × seeds (0, 1), its points from a config
  file's `get_hyper`, trained as one group of 8 runs."""
  workdir = str(tmp_path_factory.mktemp("swept"))
  points = h.points_of(_hyper_file(tmp_path_factory.mktemp("hyper")), None)
  trainer.train_and_evaluate(_config(small_data_dir), workdir, points=points)
  return workdir


def _runs(workdir) -> dict:
  out = {}
  for name in os.listdir(os.path.join(workdir, "runs")):
    if name.endswith(".json") and "normalisation" not in name:
      run = json.load(open(os.path.join(workdir, "runs", name)))
      out[(run["fold"], run["seed"], run["point"])] = run
  return out


@pytest.mark.slow
def test_a_point_trained_in_a_sweep_equals_it_trained_alone(swept, together):  # noqa: F811
  rows = [json.loads(line) for line in open(os.path.join(swept, "metrics.jsonl"))]
  assert {r["point"] for r in rows} == {0, 1}
  point0 = {
    (r["fold"], r["seed"], r["step"]): r["train/loss/total"]
    for r in rows
    if r["point"] == 0 and "train/loss/total" in r
  }
  alone = _losses(together)
  assert point0.keys() == alone.keys()
  np.testing.assert_allclose([point0[k] for k in sorted(alone)], [alone[k] for k in sorted(alone)], rtol=1e-3)  # fmt: skip
  runs = _runs(swept)
  for run in _results(together)["runs"]:
    assert runs[(run["fold"], run["seed"], 0)]["selected_step"] == run["selected_step"]
  point1 = [r["train/loss/total"] for r in rows if r["point"] == 1 and "train/loss/total" in r]
  assert not np.allclose(point1[: len(alone)], [alone[k] for k in sorted(alone)])


@pytest.mark.slow
def test_each_fold_tests_only_its_point_best_on_validation(swept):
  record = json.load(open(workdir_lib.sweep_path(swept)))
  assert record["points"] == [{"learning_rate": lr} for lr in LEARNING_RATES]
  assert len(record["runs"]) == 8
  for fold in (1, 4):
    means = [
      np.mean([r["val_score"] for r in record["runs"] if r["fold"] == fold and r["point"] == p])
      for p in (0, 1)
    ]
    assert record["selected"][str(fold)] == int(np.argmax(means)), means  # ties: the first
  tested = {k for k, run in _runs(swept).items() if "metrics" in run}
  assert tested == {(f, s, record["selected"][str(f)]) for f in (1, 4) for s in (0, 1)}
  results = _results(swept)
  assert results["sweep"]["selected"] == record["selected"]
  assert [(r["fold"], r["seed"], r["point"]) for r in results["runs"]] == [
    (f, s, record["selected"][str(f)]) for s in (0, 1) for f in (1, 4)
  ]
  md = open(workdir_lib.sweep_path(swept, "md")).read()
  assert sum(line.count("**") for line in md.splitlines() if line.startswith("| ")) == 2 * 2
  assert os.path.getsize(workdir_lib.sweep_plot_path(swept)) > 0
  csv_rows = open(workdir_lib.sweep_path(swept, "csv")).read().splitlines()
  assert csv_rows[0] == "point,learning_rate,fold1,fold4,selected_for_folds"
  for name in ("fold1_seed0_point0", "fold4_seed1_point1"):
    assert os.listdir(os.path.join(swept, "tensorboard", name))
    assert os.listdir(os.path.join(swept, "checkpoints", name, "best"))


@pytest.mark.slow
def test_a_killed_sweep_resumes_bit_exactly_and_a_changed_sweep_is_refused(
  swept, small_data_dir, tmp_path
):
  workdir = str(tmp_path / "w")
  cmd = _main(workdir, small_data_dir) + [f"--sweep=learning_rate={','.join(map(str, LEARNING_RATES))}"]  # fmt: skip
  killed = faults.stop(cmd, seed=0, within=0.0, after=faults.checkpointed(workdir, 4))
  assert killed.returncode == -signal.SIGKILL, "the sweep ended before it was killed"
  assert not os.path.exists(workdir_lib.sweep_path(workdir, "md"))
  faults.assert_clean_exit(faults.finish(cmd))
  assert _losses_by_point(workdir) == _losses_by_point(swept)
  assert json.load(open(workdir_lib.sweep_path(workdir))) == json.load(
    open(workdir_lib.sweep_path(swept))
  )
  assert _results(workdir)["runs"] == _results(swept)["runs"]

  lines = open(os.path.join(workdir, "metrics.jsonl")).read()
  config = _config(small_data_dir)
  trainer.train_and_evaluate(config, workdir, points=h.from_flags(["learning_rate=1e-3,3e-3"]))
  assert open(os.path.join(workdir, "metrics.jsonl")).read() == lines  # nothing retrained
  with pytest.raises(workdir_lib.ConfigChanged, match="another sweep"):
    trainer.train_and_evaluate(config, workdir, points=[{"learning_rate": 1e-2}])
  with pytest.raises(workdir_lib.ConfigChanged, match="another sweep"):
    trainer.train_and_evaluate(config, workdir)


def _losses_by_point(workdir) -> dict:
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {(r["fold"], r["seed"], r["point"], r["step"]): r["train/loss/total"] for r in rows if "train/loss/total" in r}  # fmt: skip


@pytest.mark.slow
def test_eval_mode_tests_the_selected_points(swept, small_data_dir):
  config = _config(small_data_dir)
  config.mode = "eval"
  results = trainer.train_and_evaluate(config, swept)  # the points it recorded
  trained = _results(swept)
  assert [(r["fold"], r["seed"], r["point"]) for r in results["runs"]] == [
    (r["fold"], r["seed"], r["point"]) for r in trained["runs"]
  ]
  for a, b in zip(results["runs"], trained["runs"], strict=True):
    assert a["checkpoint_step"] == b["selected_step"]
    war = a["metrics"]["er_emotion"]["war"], b["metrics"]["er_emotion"]["war"]
    assert abs(war[0] - war[1]) <= 1 / b["num_test"] + 1e-9


def test_a_suite_cell_sweeps_its_models_points():
  from configs.suite import get_config
  from emer_jax import suite as suite_lib
  from emer_jax.config_check import ConfigError

  suite = get_config("small")
  suite.models.emert.sweep = (("learning_rate", (1e-3, 3e-3)), ("model.modality_dropout", (0.0, 0.3)))  # fmt: skip
  assert suite_lib.cell_points(suite, "face_only") is None
  assert len(suite_lib.cell_points(suite, "emert")) == 4
  suite_lib.check_suite(suite)
  suite.models.emert.sweep = (("model.widht", (1, 2)),)
  with pytest.raises(ConfigError, match="Cell er7/emert: sweep: Unknown config key 'model.widht'"):
    suite_lib.check_suite(suite)


def test_selection_takes_the_best_mean_over_seeds_and_the_first_of_equals():
  from emer_jax.train.selection import select

  scores = {  # (fold, seed, point) -> validation score
    (1, 0, 0): 0.5, (1, 1, 0): 0.1, (1, 0, 1): 0.3, (1, 1, 1): 0.4, (1, 0, 2): 0.9, (1, 1, 2): None,
    (2, 0, 0): 0.2, (2, 1, 0): 0.4, (2, 0, 1): 0.4, (2, 1, 1): 0.2, (2, 0, 2): 0.1, (2, 1, 2): 0.1,
  }  # fmt: skip
  trained = {k: {"val_score": v} for k, v in scores.items()}
  assert select((1, 2), (0, 1), trained, 3) == {1: 1, 2: 0}


@pytest.mark.slow
def test_dropout_points_share_a_program_and_equal_their_runs_alone(small_data_dir, tmp_path):
  from emer_jax.train import multi_run

  config = _config(small_data_dir)
  config.seeds = (0,)
  points = h.zipit(
    [h.sweep("model.modality_dropout", [0.3, 0.5]), h.sweep("model.encoder_dropout", [0.5, 0.2])]
  )
  configs = h.check(config, points)
  assert multi_run.program_key(configs[0]) == multi_run.program_key(configs[1])
  assert multi_run.program_key(config) != multi_run.program_key(configs[0])  # 0: no module
  swept = trainer.train_and_evaluate(config, str(tmp_path / "sweep"), points=points)
  alone = trainer.train_and_evaluate(configs[1], str(tmp_path / "alone"))
  losses = _losses_by_point(str(tmp_path / "sweep"))
  point1 = {(f, s, step): v for (f, s, p, step), v in losses.items() if p == 1}
  point0 = {(f, s, step): v for (f, s, p, step), v in losses.items() if p == 0}
  single = _losses(str(tmp_path / "alone"))
  assert point1.keys() == single.keys()
  np.testing.assert_allclose([point1[k] for k in sorted(single)], [single[k] for k in sorted(single)], rtol=1e-3)  # fmt: skip
  assert [point0[k] for k in sorted(single)] != [point1[k] for k in sorted(single)]
  runs = {(r["fold"], r["seed"]): r["selected_step"] for r in alone["runs"]}
  record = json.load(open(workdir_lib.sweep_path(str(tmp_path / "sweep"))))
  for run in record["runs"]:
    if run["point"] == 1:
      assert run["selected_step"] == runs[(run["fold"], run["seed"])]
  assert swept["sweep"]["selected"] == record["selected"]


def test_predict_builds_the_selected_points_model(tmp_path):
  """A sweep over a shape: predict builds the point's model, and refuses to average runs of
  points that build different models."""
  from configs.quickstart import get_config
  from emer_jax.predict import model as predict_model

  config = get_config()
  workdir = str(tmp_path)
  points = [{"model.token_dim": 16}, {"model.token_dim": 32}]
  record = {"points": points, "runs": [], "selected": {"1": 1, "2": 0}}
  workdir_lib.write_json(workdir_lib.sweep_path(workdir), record)
  one = [workdir_lib.run_name(1, 0, 1)]
  assert predict_model.selected_config(workdir, config, one).model.token_dim == 32
  both = one + [workdir_lib.run_name(2, 0, 0)]
  with pytest.raises(UserError, match="--run=NAME"):
    predict_model.selected_config(workdir, config, both)
