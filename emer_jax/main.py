"""Trains and evaluates an emer_jax config.

  python -m emer_jax.main --config=configs/quickstart.py --workdir=runs/quickstart
  python -m emer_jax.main --config=configs/quickstart.py --workdir=W --config.num_epochs=5

Rerunning on the same workdir resumes from its latest checkpoint.
"""

import json

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from emer_jax.train.trainer import train_and_evaluate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/quickstart.py[:arg].")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.info("JAX devices: %s", jax.devices())
  results = train_and_evaluate(FLAGS.config, FLAGS.workdir)
  if jax.process_index() == 0:
    summary = {k: round(v, 4) for k, v in results["mean"].items() if isinstance(v, float)}
    print(json.dumps({"workdir": FLAGS.workdir, "test_mean": summary}, indent=1))


if __name__ == "__main__":
  app.run(main)
