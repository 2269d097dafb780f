"""A config's targets and stream widths, read from its dataset: the dataset owns its vocabulary.

EMER's protocols (`er7`, …) predict EMER's fixed labels. `study:<label>[,<label>…]` predicts
labels of the config's dataset, e.g. a study built as `emer_study/<name>`: `resolve` reads them
from the dataset's features (a `ClassLabel` is a classification target with its class names, a
float scalar a regression target) and records them in the config as `labels` ({name: {'kind',
'classes'}}), with the widths of its `eye` and `gaze` streams in `model.num_eye_features` and
`model.num_gaze_features`, so that `config.json` alone says what a run predicts and reads.
"""

import ml_collections
import tensorflow_datasets as tfds

import tfds_emer  # noqa: F401  (registers `emer` and `emer_study`)
from emer_jax import protocols
from emer_jax.data import pipeline
from emer_jax.data.source import resolve_data_dir
from emer_jax.errors import UserError

STUDY_DATASET = "emer_study/"
NOT_LABELS = ("sample_id", "subject_id", "fold")  # per-sample fields that identify a sample


class LabelError(UserError, KeyError):
  def __str__(self):  # KeyError would quote the message
    return str(self.args[0])


def dataset_info(name: str, data_dir: str):
  """The TFDS info of dataset `name` (features and metadata), without reading its samples."""
  data_dir = resolve_data_dir(data_dir)
  try:
    return tfds.builder(name, data_dir=data_dir).info
  except Exception:  # noqa: BLE001 - TFDS raises several kinds for a dataset not there
    raise UserError(
      f"dataset={name!r}: not found in {data_dir}; build a study with "
      f"python -m tfds_emer.build --study=STUDY --data_dir={data_dir}"
    ) from None


def labels_of(info) -> dict[str, protocols.Target]:
  """Every label of a dataset: class labels and float scalars, in the order its metadata lists
  them (a study's `labels`), else in feature order."""
  out = {}
  for name, feature in info.features.items():
    if name in NOT_LABELS or feature.shape != ():
      continue
    if isinstance(feature, tfds.features.ClassLabel):
      out[name] = protocols.Target(name, "classification", tuple(feature.names))
    elif feature.np_dtype.kind == "f":
      out[name] = protocols.Target(name, "regression")
  listed = [label["name"] for label in (info.metadata or {}).get("labels", [])]
  order = {name: i for i, name in enumerate(listed)}
  return dict(sorted(out.items(), key=lambda item: order.get(item[0], len(order))))


def described(targets: dict) -> str:
  """'emotion (7 classes), valence (regression)'."""
  return ", ".join(
    f"{t.name} ({len(t.class_names)} classes)"
    if t.kind == "classification"
    else f"{t.name} (regression)"
    for t in targets.values()
  )


def wanted(config) -> tuple[str, ...]:
  """The targets a config trains: its protocol's, `extra_targets` and `loss.head_weights`."""
  protocol = protocols.get_protocol(config.protocol)
  names = protocol.targets + protocol.auxiliary + tuple(config.extra_targets)
  return tuple(dict.fromkeys(names + tuple(config.loss.head_weights)))


def resolve(config):
  """Fills `config.labels` and the model's stream widths from the dataset for a `study:`
  protocol (in place; returns `config`) and makes its labels known (`protocols.use_labels`).
  A label the dataset lacks is one line naming it and the labels the dataset has."""
  if not protocols.is_study(config.protocol):
    if config.dataset.startswith(STUDY_DATASET):
      known = labels_of(dataset_info(config.dataset, config.data_dir))
      raise LabelError(
        f"protocol={config.protocol!r} predicts EMER's labels; the dataset {config.dataset} has "
        f"its own ({described(known) or 'none'}): set protocol='study:<label>'"
      )
    protocols.use_labels(config.get("labels"))
    return config
  info = dataset_info(config.dataset, config.data_dir)
  known = labels_of(info)
  unknown = [n for n in wanted(config) if n not in known]
  if unknown:
    raise LabelError(
      f"protocol={config.protocol!r}: the dataset {config.dataset} has no label "
      f"{', '.join(map(repr, unknown))}; its labels are {described(known) or 'none'}"
    )
  kinds = {known[n].kind for n in protocols.get_protocol(config.protocol).targets}
  if len(kinds) > 1:
    raise LabelError(
      f"protocol={config.protocol!r} mixes classes and regression targets; a protocol's "
      "targets are of one kind: name the others in extra_targets to train them alongside"
    )
  config.labels = ml_collections.ConfigDict({n: known[n].to_label() for n in wanted(config)})
  eye_columns = tuple(info.metadata.get("eye_columns") or ()) if info.metadata else ()
  eye_width, gaze_width = info.features["eye"].shape[-1], info.features["gaze"].shape[-1]
  if config.model.eye_columns == "clocks":
    eye_width = len(pipeline.clock_columns(eye_columns or pipeline.stored_eye_columns(eye_width)))
  config.model.num_eye_features = eye_width
  config.model.num_gaze_features = gaze_width
  protocols.use_labels(config.labels)
  return config
