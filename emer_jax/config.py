"""The keys every emer_jax config has, with the reference settings as defaults.

Config files in `configs/` start from `base_config()` and change what they need. ConfigDicts
are locked, so a misspelt `--config.key=value` override is an error naming the key and the
nearest valid ones; `emer_jax.config_check` checks every value before anything runs.
"""

import ml_collections

from emer_jax import models
from emer_jax.protocols import TARGETS, get_protocol


def base_config(variant: str = "reference") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = "train"  # or 'eval': test `init_checkpoint`, else each run's best, into W/eval/
  c.dataset = "emer/synthetic"  # a TFDS name with its builder config
  c.data_dir = ""  # '' means $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.protocol = "er7"  # see emer_jax.protocols.PROTOCOLS, or 'study:<label>[,<label>…]'
  c.extra_targets = ()  # more heads trained jointly (multitask), e.g. ('fer_emotion',)
  # A 'study:' protocol's targets as the dataset names them, {label: {kind, classes}}: filled
  # from the dataset when a run starts (emer_jax.dataset_targets), never set by hand.
  c.labels = ml_collections.ConfigDict()
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
  c.input.cache = True  # keep decoded samples in memory (real EMER: about 1.9 GB a process)
  # Where per-step sampling runs: 'device' (the decoded dataset on the devices, sampled inside
  # the compiled step: emer_jax.data.on_device), 'host' (grain), or 'auto' (device on an
  # accelerator the data fits, else host: a CPU, several processes, model.eye_columns='clocks').
  c.input.placement = "auto"
  c.input.num_threads = 4
  c.input.prefetch = 4  # batches read ahead; at least num_threads are
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

  # With the data on the devices, runs (folds × seeds) train together in groups of at most
  # `parallel_runs` (0: all of them in one group; 1: one at a time), `steps_per_call` steps
  # per host call (0: 1 on a CPU, 8 elsewhere; emer_jax.train.device_engine). The host placement
  # trains one run at a time.
  c.parallel_runs = 0
  c.steps_per_call = 0

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


# The other label view's counterpart of each target, for multitask runs (ER ↔ FER).
_COUNTERPART = {"er": "fer", "fer": "er"}


def _counterparts(targets) -> tuple[str, ...]:
  out = []
  for name in targets:
    view, _, rest = name.partition("_")
    if view not in _COUNTERPART:  # a study's label has no other view
      continue
    other = f"{_COUNTERPART[view]}_{rest}"
    if other in TARGETS and other not in targets:
      out.append(other)
  return tuple(out)


def protocol_config(protocol: str, arg: str = "") -> ml_collections.ConfigDict:
  """The config of a benchmark protocol (`configs/protocols/<protocol>.py`).

  `arg` is a comma-separated list of options:
    small: EMER-Sim small, a narrow EMERT with a linear head, 20 epochs at learning rate 1e-3
      (minutes per fold on a CPU); without it, the reference settings on `emer/synthetic`.
    multitask: also train the other view's heads (ER ↔ FER), e.g. er7 adds `fer_emotion`.
    variant=NAME: a model of `emer_jax.models.VARIANTS` (EMERT or a baseline); by default
      `reference`, and `intensity` (the authors' intensity model) for `fer_int`.
  """
  spec = get_protocol(protocol)
  options = [o.strip() for o in arg.split(",") if o.strip()]
  variant = "intensity" if protocol == "fer_int" else "reference"
  for option in options:
    if option.startswith("variant="):
      variant = option.removeprefix("variant=")
    elif option not in ("small", "multitask"):
      raise ValueError(
        f"Unknown option {option!r} in {arg!r}; expected small, multitask, variant=."
      )
  c = base_config(variant)
  c.protocol = protocol
  if protocol == "fer_int":  # the authors' intensity model: (alpha, beta, delta) = (0.3, 0.1, 1)
    c.loss.alpha = 0.3
    c.loss.beta = 0.1
  if "multitask" in options:
    c.extra_targets = _counterparts(spec.targets + spec.auxiliary)
  if "small" in options:
    c.dataset = "emer/synthetic_small"
    c.num_epochs = 20
    c.learning_rate = 1e-3
    c.checkpoint_every_steps = 50
    c.model.face_encoder.widths = (8, 16, 32, 64)
    c.model.head_hidden = ()  # the reference MLP head barely learns in a short run
  return c


def from_json(recorded: dict) -> ml_collections.ConfigDict:
  """A config from its JSON dict (`config.json`): lists back to tuples."""

  def tuples(obj):
    if isinstance(obj, dict):
      return {k: tuples(v) for k, v in obj.items()}
    return tuple(tuples(v) for v in obj) if isinstance(obj, list) else obj

  return ml_collections.ConfigDict(tuples(recorded))
