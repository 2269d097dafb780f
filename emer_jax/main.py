"""Trains and evaluates an emer_jax config.

  python -m emer_jax.main --config=configs/quickstart.py --workdir=runs/quickstart
  python -m emer_jax.main --config=configs/quickstart.py --workdir=W --config.num_epochs=5

A sweep (`emer_jax.sweep`): `--sweep=learning_rate=3e-4,1e-3,3e-3` (repeatable: a product), or
the config file's `get_hyper(h)`; each test fold tests the point best on validation.
Rerunning on the same workdir resumes from its latest checkpoint; a rerun with a changed config
is refused (add --restart to move the old contents aside and start over). `--config.mode=eval`
tests what the workdir holds, writing to W/eval/. Multi-process (one process per host): add
--distributed (auto-detection), or --coordinator_address, --num_processes, --process_id.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from emer_jax import cli, logs
from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.evaluation.summary import print_summary
from emer_jax.train.trainer import train_and_evaluate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/quickstart.py[:arg].")
cli.define_path("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_bool(
  "restart",
  False,
  "Start the workdir over: move its contents to WORKDIR/before-restart-<time>/ (nothing is "
  "deleted), instead of refusing a config that differs from the one it was started with.",
)
flags.DEFINE_multi_string(
  "sweep",
  [],
  "KEY=V1,V2,…: train every value of a config key (relative to the config; repeat for a "
  "product), and test per fold the point best on validation. Replaces the config file's "
  "get_hyper(h).",
)
flags.DEFINE_bool(
  "distributed",
  False,
  "Join a multi-process job with jax.distributed.initialize() (detects TPU pods, SLURM, Open MPI).",
)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, where not detected.")
flags.DEFINE_integer("num_processes", None, "Number of processes, where not detected.")
flags.DEFINE_integer("process_id", None, "This process's index, where not detected.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.distributed or FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info(
    "Process %d of %d; devices: %s", jax.process_index(), jax.process_count(), jax.devices()
  )
  points = sweep_lib.points_of(config_flags.get_config_filename(FLAGS["config"]), FLAGS.sweep)
  results = train_and_evaluate(FLAGS.config, FLAGS.workdir, restart=FLAGS.restart, points=points)
  if jax.process_index() == 0:
    evaluated = FLAGS.config.mode == "eval"  # eval mode writes under W/eval/
    print_summary(results, workdir_lib.eval_dir(FLAGS.workdir) if evaluated else FLAGS.workdir)
    if "sweep" in results and not evaluated:
      sweep = results["sweep"]
      chosen = "; ".join(
        f"fold {fold}: point {p} ({sweep_lib.label(sweep['points'][p])})"
        for fold, p in sweep["selected"].items()
      )
      logs.wrote(
        "sweep",
        workdir_lib.sweep_path(FLAGS.workdir, "md"),
        f"also sweep.json, sweep.csv, plots/sweep.png; {chosen}",
      )


if __name__ == "__main__":
  sys.exit(cli.run(main))
