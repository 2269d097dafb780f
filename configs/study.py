"""EMERT (narrow) on a study of your own, built as `emer_study/<name>`: minutes on a CPU.

  python -m emer_jax.main --config=configs/study.py --config.dataset=emer_study/NAME \
    --config.data_dir=DATA --config.protocol=study:LABEL[,LABEL…] --workdir=W

The targets, their class names and the eye and gaze widths come from the dataset
(`emer_jax.dataset_targets`); the eye stream is the tracker schema (22 columns).
"""

from emer_jax.config import base_config


def get_config():
  c = base_config("reference")
  c.dataset = "emer_study/my_study"  # python -m tfds_emer.build --study=my_study --data_dir=D
  c.protocol = "study:emotion"
  c.folds = (1,)
  c.num_epochs = 20
  # The worked example's 16 recordings leave 8 to train on in a fold; raise it for a larger study.
  c.batch_size = 8
  c.eval_batch_size = 8
  c.learning_rate = 1e-3
  c.checkpoint_every_steps = 50
  c.log_every_steps = 10
  m = c.model
  m.eye_clocks = "relative"  # time since the recording's start, not a clock
  m.face_encoder.widths = (8, 16, 32, 64)
  # A linear head learns within a CPU-minutes budget (see configs/quickstart.py).
  m.head_hidden = ()
  return c
