"""Every file a finished workdir holds is named by emer_jax/workdir.py, the one owner of its
paths, and its config.json is read one way."""

import os

from emer_jax import workdir as workdir_lib


def test_every_file_of_a_finished_workdir_is_named_by_workdir_py(finished):
  workdir, config = finished
  (fold,), (seed,) = config.folds, config.seeds
  run = workdir_lib.run_name(fold, seed)
  named = {
    workdir_lib.config_path(workdir),
    workdir_lib.results_path(workdir),
    *workdir_lib.results_table_paths(workdir),
    workdir_lib.per_class_recall_path(workdir),
    workdir_lib.metrics_path(workdir),
    os.fspath(workdir_lib.predictions_path(workdir, fold, seed)),
    workdir_lib.run_json_path(workdir, fold, seed),
    workdir_lib.normalisation_path(workdir, fold, seed),
  }
  folders = (
    workdir_lib.checkpoints_dir(workdir, run),
    workdir_lib.tensorboard_dir(workdir, run),
  )
  plots = [
    workdir_lib.plot_path(workdir, f"{kind}_er_emotion_{run}") for kind in ("confusion", "recall")
  ] + [workdir_lib.plot_path(workdir, f"learning_curves_{run}")]
  found = set()
  for root, _, files in os.walk(workdir):
    found |= {os.path.join(root, f) for f in files}
  inside = {f for f in found if f.startswith(tuple(d + os.sep for d in folders))}
  assert found - inside == named | set(plots)
  assert sorted(os.listdir(workdir_lib.plots_dir(workdir))) == sorted(map(os.path.basename, plots))


def test_predict_reads_an_older_config_json_with_todays_defaults(finished, tmp_path):
  """config.json is read one way (`workdir.load_config`): a key added since an older workdir
  was written takes its default, for predict as for main and eval mode."""
  import json
  import shutil

  from emer_jax import config as config_lib
  from emer_jax import predict

  workdir = str(tmp_path / "older")
  shutil.copytree(finished[0], workdir)
  recorded = workdir_lib.read_config(workdir)
  del recorded["model"]["eye_columns"], recorded["dtype"]
  with open(workdir_lib.config_path(workdir), "w") as f:
    json.dump(recorded, f)
  default = config_lib.base_config(recorded["model"]["variant"])
  loaded = workdir_lib.load_config(workdir)
  assert (loaded.model.eye_columns, loaded.dtype) == (default.model.eye_columns, default.dtype)
  assert loaded.folds == tuple(recorded["folds"])
  model = predict.from_workdir(workdir)
  assert model.settings.sampler.eye_columns == default.model.eye_columns
