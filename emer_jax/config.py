"""The keys every emer_jax config has, with the reference settings as defaults.

Config files in `configs/` start from `base_config()` and change what they need. ConfigDicts
are locked, so a misspelt `--config.key=value` override is an error naming the key.
"""

import ml_collections

from emer_jax import models


def base_config(variant: str = "reference") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = "train"  # or 'eval': test `init_checkpoint` (or a resumed run) without training
  c.dataset = "emer/synthetic"  # a TFDS name with its builder config
  c.data_dir = ""  # '' means $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.protocol = "er7"  # see emer_jax.protocols.PROTOCOLS
  c.extra_targets = ()  # more heads trained jointly (multitask), e.g. ('fer_emotion',)
  c.fold_scheme = "reference"  # or 'subject'
  c.folds = (1, 2, 3, 4, 5)  # test folds, one run each
  c.val_fraction = 0.15  # share of training subjects held out for model selection
  c.selection_metric = ""  # '' = war (classification) or mae (regression)
  c.seed = 0  # seeds the fold and validation partitions
  c.seeds = (0,)  # one run per seed: initialisation, dropout, shuffling

  c.model = models.get_config(variant)
  c.dtype = "float32"  # computation dtype; parameters and optimiser state stay float32

  c.input = ml_collections.ConfigDict()
  # Linked to the model's sizes: overriding either side changes both.
  c.input.num_frames = c.model.face_encoder.get_ref("num_frames")
  c.input.num_eye_rows = c.model.get_ref("sequence_length")
  c.input.flip = True
  c.input.channel_order = "rgb"  # 'bgr' for the authors' checkpoints (they read frames with OpenCV)
  c.input.num_threads = 4
  c.input.prefetch = 4
  c.input.workers = 0  # grain worker processes (0: threads only)

  c.batch_size = 16
  c.eval_batch_size = 32
  c.num_epochs = 200
  c.total_steps = 0  # > 0 overrides num_epochs
  c.learning_rate = 1e-4
  c.weight_decay = 5e-4
  c.warmup_steps = 0

  c.loss = ml_collections.ConfigDict()
  c.loss.alpha = 0.01  # invariant (reversed) discriminator loss
  c.loss.beta = 0.01  # specific discriminator loss
  c.loss.head_weights = ml_collections.ConfigDict()  # target name -> weight (default 1)

  c.grl = ml_collections.ConfigDict()
  c.grl.schedule = "constant"  # or 'dann'
  c.grl.value = 1.0

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.model = 1

  c.log_every_steps = 10
  c.eval_every_steps = 0  # 0: once per epoch
  c.checkpoint_every_steps = 100
  c.keep_checkpoints = 2
  c.init_checkpoint = ""  # model weights to start from (e.g. from `python -m emer_jax.convert`)
  c.lock()
  return c
