"""No user action loses or misreports work: eval mode, a workdir's kept config, one writer,
restoring, and the messages of bad input. One tiny finished workdir is shared by most tests."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import jax
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from emer_jax import cli, config_check, models
from emer_jax import suite as suite_lib
from emer_jax import workdir as workdir_lib
from emer_jax.data.source import open_source
from emer_jax.protocols import head_sizes
from emer_jax.train import checkpoint, eval_mode, run_checkpoints, trainer
from emer_jax.train import runs as runs_lib
from emer_jax.train import state as state_lib
from tests import faults
from tests.conftest import tiny_run_config
from tests.test_train import REPO, TINY
from tfds_emer import locks

TRAINING_OWNED = ("checkpoints", "metrics.jsonl", "runs", "config.json", "results.json")


def _snapshot(workdir) -> dict:
  """{relative path: sha256} of every file training owns."""
  out = {}
  for name in TRAINING_OWNED:
    root = os.path.join(workdir, name)
    paths = [root] if os.path.isfile(root) else []
    for parent, _, files in os.walk(root):
      paths += [os.path.join(parent, f) for f in files]
    for path in paths:
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
  return out


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_eval_mode_then_training_rerun_after_a_kill_equals_an_uninterrupted_run(finished, tmp_path):
  """Scenario 1: a run killed after its step-4 checkpoint, evaluated, then trained to the end."""
  full, config = finished
  killed = str(tmp_path / "killed")
  shutil.copytree(full, killed)
  for name in ("runs", "eval", "plots"):
    shutil.rmtree(os.path.join(killed, name), ignore_errors=True)
  for name in os.listdir(killed):
    if name.startswith(("results", "predictions", "per_class")):
      os.remove(os.path.join(killed, name))
  shutil.rmtree(os.path.join(killed, "checkpoints", "fold1_seed0", "latest", "6"))
  with open(os.path.join(killed, "metrics.jsonl")) as f:
    lines = [line for line in f if json.loads(line)["step"] <= 4]
  with open(os.path.join(killed, "metrics.jsonl"), "w") as f:
    f.writelines(lines)
  before = _snapshot(killed)

  eval_config = config.copy_and_resolve_references()
  eval_config.mode = "eval"
  evaluation = trainer.train_and_evaluate(eval_config, killed)
  assert _snapshot(killed) == before
  assert os.path.exists(os.path.join(killed, "eval", "results.json"))
  trained = _results(full)["runs"][0]
  assert evaluation["runs"][0]["evaluated"].endswith(f"best/{trained['selected_step']}")
  assert evaluation["runs"][0]["metrics"] == trained["metrics"]  # the selected weights

  trainer.train_and_evaluate(config, killed)
  assert _results(killed) == _results(full)

  # Without `best`, eval mode tests the newest `latest`, and only writes under eval/.
  shutil.rmtree(os.path.join(killed, "checkpoints", "fold1_seed0", "best"))
  before = _snapshot(killed)
  evaluation = trainer.train_and_evaluate(eval_config, killed)
  assert evaluation["runs"][0]["evaluated"].endswith("fold1_seed0/latest/6")
  assert _snapshot(killed) == before


def test_eval_mode_with_nothing_to_evaluate_names_what_it_looked_for(small_data_dir, tmp_path):
  config = tiny_run_config(small_data_dir)
  config.mode = "eval"
  with pytest.raises(eval_mode.NothingToEvaluate, match="fold1_seed0/best or .*fold1_seed0/latest"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
  "changes, named",
  [
    ({"protocol": "fer7", "learning_rate": 0.5}, ["protocol: 'er7' there, 'fer7' now", "0.001"]),
    ({"model.face_encoder.widths": (8, 16, 32, 32)}, ["model.face_encoder.widths"]),
  ],
)
def test_a_changed_config_is_refused_before_anything_is_written(finished, changes, named):
  """Scenarios 2 and 3: nothing training owns changes, config.json included."""
  workdir, config = finished
  config = config.copy_and_resolve_references()
  for key, value in changes.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  before = _snapshot(workdir)
  with pytest.raises(workdir_lib.ConfigChanged) as error:
    trainer.train_and_evaluate(config, workdir)
  for text in named + ["--restart", "--workdir"]:
    assert text in str(error.value)
  assert _snapshot(workdir) == before


def test_keys_that_change_nothing_trained_may_differ(finished, tmp_path):
  full, config = finished
  workdir = str(tmp_path / "w")
  shutil.copytree(full, workdir)
  before = _snapshot(workdir)
  config = config.copy_and_resolve_references()
  config.log_every_steps = 3
  config.input.num_threads = 2
  results = trainer.train_and_evaluate(config, workdir)
  assert _snapshot(workdir) == before  # the finished run is read, config.json is kept
  assert results["runs"] == _results(full)["runs"]


def test_restart_moves_the_old_contents_aside(tmp_path):
  (tmp_path / "runs").mkdir()
  (tmp_path / "config.json").write_text("{}")
  (tmp_path / ".lock").write_text("")
  aside = workdir_lib.move_aside(str(tmp_path))
  assert sorted(os.listdir(aside)) == ["config.json", "runs"]
  assert sorted(os.listdir(tmp_path)) == [".lock", os.path.basename(aside)]


def test_a_second_process_on_a_live_workdir_stops_naming_the_holder(small_data_dir, tmp_path):
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time\nfrom tfds_emer import locks\n"
      f"with locks.exclusive({str(tmp_path / '.lock')!r}, 'W'):\n"
      "  print('held', flush=True); time.sleep(120)",
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    out = subprocess.run(
      [
        sys.executable,
        "-m",
        "emer_jax.main",
        "--config=configs/quickstart.py",
        f"--workdir={tmp_path}",
        f"--config.data_dir={small_data_dir}",
        *TINY,
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
    )
  finally:
    holder.kill()
    holder.wait()
  assert out.returncode == 1
  error = out.stderr.strip().splitlines()[-1]
  assert f"pid {holder.pid}" in error
  faults.assert_clean_exit(out.stderr)
  assert os.listdir(tmp_path) == [".lock"]


def test_a_held_workdir_is_refused_in_process(finished):
  workdir, config = finished
  with locks.exclusive(os.path.join(workdir, ".lock"), "W"):
    with pytest.raises(locks.LockHeld, match=f"pid {os.getpid()}"):
      trainer.train_and_evaluate(config, workdir)


def test_a_checkpoint_of_another_model_is_an_error_naming_the_key(finished):
  workdir, config = finished
  config = config.copy_and_resolve_references()
  config.model.feature_dim = 8
  heads = head_sizes(state_lib.run_targets(config))

  def init():
    model = models.build_model(config.model, heads=heads, rngs=nnx.Rngs(0))
    return {"model": model, "optimizer": nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)}

  mesh = state_lib.make_mesh(config)
  _, abstract = nnx.get_abstract_model(init, mesh)
  before = _snapshot(workdir)
  latest = ocp.CheckpointManager(os.path.join(workdir, "checkpoints", "fold1_seed0", "latest"))
  with pytest.raises(checkpoint.CheckpointMismatch, match=r"latest/6 does not fit.*shape"):
    run_checkpoints.restore_latest(latest, abstract, {}, "host")
  assert _snapshot(workdir) == before  # nothing deleted or moved aside


def test_stream_keys_of_a_seed_are_not_those_of_another():
  keys = [jax.random.key_data(k).tolist() for s in range(4) for k in state_lib.stream_keys(s)]
  assert len({str(k) for k in keys}) == len(keys)


# --- Messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "key, value, named",
  [
    ("batch_size", 0, "batch_size=0: expected a positive integer"),
    ("eval_batch_size", 0, "eval_batch_size=0: expected a positive integer"),
    ("dtype", "float8", "dtype='float8': expected one of"),
    ("dtype", "int8", "dtype='int8': expected one of"),
    ("val_fraction", 1.5, "val_fraction=1.5: expected 0 ≤ val_fraction < 1"),
    ("folds", (), "folds=(): must be a non-empty tuple"),
    ("folds", (1, 1), "folds=(1, 1): repeats [1]"),
    ("seeds", (0, 0), "seeds=(0, 0): repeats [0]"),
    ("learning_rate", -1e-3, "learning_rate=-0.001: expected a finite number > 0"),
    ("init_checkpoint", "w.pth", "convert it first with python -m emer_jax.convert"),
    ("init_checkpoint", "/nonexistent/model", "'/nonexistent/model': no such folder"),
    ("parallel_runs", -1, "parallel_runs=-1: expected an integer ≥ 0"),
    ("steps_per_call", -1, "steps_per_call=-1: expected an integer ≥ 0"),
    ("input.placement", "gpu", "input.placement='gpu': expected one of ('auto', 'device'"),
  ],
)
def test_config_errors_name_key_value_and_what_is_allowed(key, value, named):
  from configs.quickstart import get_config

  config = get_config()
  *parents, leaf = key.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  with pytest.raises(config_check.ConfigError) as error:
    config_check.check(config)
  assert named in str(error.value)


def test_runs_together_on_the_host_is_an_error_naming_both_keys(small_data_dir):
  from configs.quickstart import get_config

  config = get_config()
  config.parallel_runs = 3
  config.input.placement = "host"
  with pytest.raises(config_check.ConfigError, match="parallel_runs=3 with input.placement='host'"):
    config_check.check(config)
  config.input.placement = "auto"  # resolves to the host on a CPU
  data = open_source(config.dataset, small_data_dir, prepare=False)
  with pytest.raises(
    config_check.ConfigError, match=r"parallel_runs=3 needs .* resolved to 'host'"
  ):
    state_lib.resolve_placement(config, data)
  config.parallel_runs = 0
  assert state_lib.resolve_placement(config, data) == ("host", None)
  config.input.placement, config.model.eye_columns = "device", "clocks"
  with pytest.raises(config_check.ConfigError, match="model.eye_columns='clocks': the data on"):
    config_check.check(config)


def test_benchmark_steps_zero_is_named():
  from configs.benchmark import get_config

  config = get_config()
  config.benchmark.steps = 0
  with pytest.raises(config_check.ConfigError, match="benchmark.steps=0"):
    config_check.check(config)


def test_misspelt_key_is_one_line_with_the_nearest_keys():
  from configs.quickstart import get_config

  config = get_config()
  assert config_check.unknown_key(config, "learning_rat") == (
    "Unknown config key 'learning_rat': did you mean learning_rate?"
  )
  assert "model.face_encoder.widths" in config_check.unknown_key(config, "model.face_encoder.widht")
  assert config_check.unknown_key(config, "model.feature_dim") is None
  argv = ["main", "--config=configs/quickstart.py", "--config.learning_rat=0.1"]
  assert "did you mean learning_rate" in cli.flag_error(argv, AttributeError("x"))


def test_an_unknown_suite_model_is_named_before_anything_trains():
  from configs.suite import get_config

  suite = get_config("small")
  suite.model_names = ("emert", "emrt")
  with pytest.raises(config_check.ConfigError, match=r"model_names: unknown \['emrt'\]"):
    suite_lib.run_suite(suite, "/nonexistent/suite")


def test_the_suite_refuses_a_finished_cell_of_another_config(finished, tmp_path):
  from configs.suite import get_config

  suite = get_config("small")
  cell = tmp_path / "er7" / "emert"
  cell.mkdir(parents=True)
  shutil.copy(os.path.join(finished[0], "results.json"), cell / "results.json")
  with pytest.raises(workdir_lib.ConfigChanged, match="finished cell er7/emert"):
    suite_lib.run_cell(suite, "er7", "emert", str(cell))


def test_init_checkpoint_of_other_sizes_lists_the_keys(small_data_dir, tmp_path):
  config = tiny_run_config(small_data_dir)
  other = config.model.copy_and_resolve_references()
  other.feature_dim = 8
  model = models.build_model(other, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  checkpoint.save_model(str(tmp_path / "model"), model)
  config.init_checkpoint = str(tmp_path / "model")
  with pytest.raises(checkpoint.CheckpointMismatch) as error:
    trainer.train_and_evaluate(config, str(tmp_path / "w"))
  assert str(tmp_path / "model") in str(error.value) and "shape (8," in str(error.value)
  assert not os.path.exists(tmp_path / "w" / "config.json")


def test_convert_of_a_zip_with_a_broken_pickle_names_the_file(tmp_path):
  from emer_jax.convert import load_torch_file

  path = tmp_path / "broken.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"a": 1})[:-5] + b"\x99garbage")
  with pytest.raises(ValueError, match=r"broken\.pth: cannot read archive/data\.pkl"):
    load_torch_file(path)


def test_a_non_finite_stop_is_one_line_and_ctrl_c_exits_130(monkeypatch, capsys):
  """What `cli.run` makes of the trainer's stops (the end-to-end Ctrl-C is in test_faults.py)."""
  message = "Non-finite loss and gradients at step 2; the update was skipped and the run stopped."

  def non_finite(argv):
    raise runs_lib.NonFiniteError(message)

  def interrupted(argv):
    raise KeyboardInterrupt

  monkeypatch.setattr(sys, "argv", ["main"])
  with pytest.raises(SystemExit) as stop:
    cli.run(non_finite)
  assert stop.value.code == 1
  assert capsys.readouterr().err == f"Error: {message}\n"
  assert cli.run(interrupted) == 130
  assert capsys.readouterr().err == (
    "Interrupted. Rerun the same command to resume from the last checkpoint.\n"
  )


def test_a_config_recorded_before_keys_were_added_or_removed_is_read_with_defaults(tmp_path):
  """config.json of older code lacks today's keys (they take their defaults) and may hold keys
  since removed: neither is "another config"; a key set off its default still is."""
  from emer_jax import config as config_lib

  config = config_lib.protocol_config("er7")
  old = workdir_lib.config_json(config)
  assert old.pop("weight_decay") == config_lib.base_config().weight_decay
  old["input"]["a_key_since_removed"] = 3
  (tmp_path / "config.json").write_text(json.dumps(old))
  workdir_lib.check_same_config(str(tmp_path), config)
  config.weight_decay += 1
  with pytest.raises(workdir_lib.ConfigChanged, match=r"weight_decay: [\d.e-]+ there"):
    workdir_lib.check_same_config(str(tmp_path), config)
