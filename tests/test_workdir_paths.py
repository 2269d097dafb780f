"""Every file a finished workdir holds is named by emer_jax/workdir.py, the one owner of its paths."""

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
