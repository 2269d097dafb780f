"""Opening the TFDS `emer` dataset as a random-access source, preparing it when it is synthetic."""

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

import tfds_emer  # noqa: F401  (registers `emer`)
from tfds_emer import build as emer_build

# Per-sample fields small enough to hold in memory for splitting and reporting.
INDEX_FIELDS = ("sample_id", "subject_id", "fold")


@dataclasses.dataclass(frozen=True)
class EmerSource:
  """A `tfds.data_source` over every sample of one `emer` config, with its metadata."""

  source: object  # random access: len(), source[i] -> dict of numpy arrays
  metadata: dict
  index: dict  # field -> (N,) numpy array, for INDEX_FIELDS and every label
  # eye/gaze statistics of a run's training part (`pipeline.with_normalisation`); None until then
  normalisation: object = None

  def __len__(self):
    return len(self.source)


def resolve_data_dir(data_dir: str) -> str:
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


class CachedSource:
  """Random access to `source` that keeps every sample it has decoded, as read-only arrays.

  Decoding a stored sample (zlib-compressed face frames) costs several times what the sampler
  does with it, and EMER fits in memory: EMER-Sim small takes 138 MB decoded (0.73 MB a
  sample); the real release, at 32 frames and about 1,470 eye rows a sample, should take about
  1.9 GB. A copy sent to a grain worker process starts empty and fills its own cache.
  """

  def __init__(self, source):
    self._source, self._cache = source, {}

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    index = int(index)
    example = self._cache.get(index)
    if example is None:
      example = self._source[index]
      for value in example.values():
        if isinstance(value, np.ndarray):
          value.flags.writeable = False
      self._cache[index] = example
    return example

  def __getstate__(self):
    return {"_source": self._source, "_cache": {}}


def prepared_builder(name: str, data_dir: str, *, prepare: bool = True):
  """The TFDS builder of `name` (e.g. 'emer/synthetic_small'), built if it is synthetic.

  A synthetic config that is not built yet is built first (array_record, with a progress bar;
  a second process building it into the same data_dir waits and then uses that build); the
  real release must be built by the user with `python -m tfds_emer.build`. A damaged dataset
  folder raises DatasetDamaged with the command that rebuilds it.
  """
  data_dir = resolve_data_dir(data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  if emer_build.is_built(builder):
    return builder
  if not (prepare and builder.builder_config.name.startswith("synthetic")):
    raise FileNotFoundError(
      f"Dataset {name!r} is not prepared in {data_dir}. Build it first with:\n  "
      f"{emer_build.build_command(builder)}"
    )
  return emer_build.prepare(builder, file_format="array_record")


def open_source(
  name: str, data_dir: str, *, prepare: bool = True, cache: bool = False
) -> EmerSource:
  """Returns the `train` split of `name`, prepared as by `prepared_builder`.

  With `cache`, decoded samples stay in memory (see `CachedSource`).
  """
  builder = prepared_builder(name, data_dir, prepare=prepare)
  source = builder.as_data_source(split="train")
  if cache:
    source = CachedSource(source)
  return EmerSource(source, dict(builder.info.metadata or {}), _read_index(source, builder))


def _read_sample(source, i: int, builder):
  try:
    return source[i]
  except Exception as e:  # noqa: BLE001 - any stored sample that cannot be read means damage
    raise emer_build.DatasetDamaged(
      f"{builder.data_dir}: sample {i} of {builder.info.full_name} cannot be read "
      f"({type(e).__name__}: {e}). The dataset files are damaged; move them aside and build "
      f"them again:\n  {emer_build.rebuild_command(builder)}"
    ) from e


def _read_index(source, builder) -> dict:
  """Reads the small per-sample fields (ids, folds, labels) of every sample."""
  info = builder.info
  names = list(INDEX_FIELDS) + [
    name
    for name, feature in info.features.items()
    if not feature.shape and name not in INDEX_FIELDS
  ]
  rows = [_read_sample(source, i, builder) for i in range(len(source))]
  index = {}
  for name in dict.fromkeys(names):
    values = [row[name] for row in rows]
    index[name] = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values])
  return index
