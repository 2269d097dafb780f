"""grain input pipelines: segment sampling, normalisation, batching, placement on the mesh.

EMERT sees a fixed number of face frames and eye/gaze rows per sample. Following the reference,
each sequence is cut into equal segments and one item is taken per segment: a random one in
training, the segment centre in evaluation.

Eye and gaze rows are normalised with the mean and std of the run's own training part
(`normalisation_stats`, attached to the source by `with_normalisation`); the dataset's
whole-dataset statistics are for display only. The eye stream's clock columns are presented as
the model config says (`model.eye_clocks`): 'absolute', as stored (the authors' inputs, the
`reference` variant), or 'relative', t − t₀ of the sample's recording (every other variant).
`model.eye_columns = 'clocks'` reduces the eye stream to its clock columns (`eye_clocks_only`).
"""

import dataclasses
import json
import os

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emer_jax.data.source import EmerSource
from emer_jax.protocols import TARGETS
from tfds_emer import eye_export
from tfds_emer.stats import RunningStats
from tfds_emer.trackers import schema

EYE_CLOCKS = ("absolute", "relative")
EYE_COLUMNS = ("all", "clocks")


def segment_indices(length: int, num: int, rng: np.random.Generator | None = None) -> np.ndarray:
  """One index per equal segment of [0, length): random with `rng`, else the segment centre."""
  if length < 1:
    raise ValueError(f"Cannot sample {num} items from an empty sequence.")
  edges = np.linspace(0.0, length, num + 1)
  points = (edges[:-1] + edges[1:]) / 2 if rng is None else rng.uniform(edges[:-1], edges[1:])
  return np.clip(np.floor(points).astype(np.int64), 0, length - 1)


def stored_eye_columns(width: int) -> tuple[str, ...]:
  """The stored eye columns of a dataset whose `eye` stream is `width` wide, where its metadata
  does not list them: EMER's 39 (`eye_export.COLUMNS`) or the tracker schema's 22."""
  for columns in (eye_export.COLUMNS, schema.COLUMNS):
    if len(columns) == width:
      return tuple(columns)
  raise ValueError(
    f"An eye stream {width} columns wide is neither EMER's ({eye_export.NUM_COLUMNS}) nor the "
    f"tracker schema's ({len(schema.COLUMNS)}); the dataset's metadata must list its columns."
  )


def clock_columns(eye_columns=eye_export.COLUMNS) -> tuple[int, ...]:
  """Positions of the clock columns among a dataset's eye columns: EMER's two
  (`eye_export.CLOCK_COLUMNS`), or the tracker schema's `time_ms`.

  Headers are matched by their start, so Pro Lab's unit-bracketed 'Recording timestamp [μs]'
  counts as 'Recording timestamp'.
  """
  if schema.CLOCK in eye_columns:
    return (list(eye_columns).index(schema.CLOCK),)
  names = [str(c).lower() for c in eye_columns]
  found = tuple(
    i
    for i, c in enumerate(names)
    if c.startswith(tuple(k.lower() for k in eye_export.CLOCK_COLUMNS))
  )
  if len(found) != len(eye_export.CLOCK_COLUMNS):
    raise ValueError(
      f"Expected the clock columns {list(eye_export.CLOCK_COLUMNS)} among the eye columns; "
      f"found {[list(eye_columns)[i] for i in found]} in {list(eye_columns)}."
    )
  return found


def eye_features(eye: np.ndarray, clocks: tuple[int, ...], mode: str, rows=None) -> np.ndarray:
  """A sample's stored eye rows (those at `rows`, default all) as the model sees them, the clock
  columns absolute or t − t₀ (t₀: the clock on the sample's first stored row)."""
  if mode not in EYE_CLOCKS:
    raise ValueError(f"model.eye_clocks is {mode!r}; expected one of {EYE_CLOCKS}.")
  out = eye if rows is None else eye[rows]
  if mode == "relative":
    out = np.array(out, np.float32)
    out[:, clocks] -= eye[0, clocks]
  return out


@dataclasses.dataclass(frozen=True)
class Normalisation:
  """Per-column mean and std of one run's training part, and how its clocks were presented."""

  eye_mean: np.ndarray  # (eye columns,) float32: EMER's 39, a study's 22
  eye_std: np.ndarray  # (eye columns,), 1 for constant columns
  gaze_mean: np.ndarray  # (2,)
  gaze_std: np.ndarray
  eye_clocks: str
  num_samples: int  # training samples the statistics come from
  num_rows: int  # eye rows over those samples

  def to_dict(self) -> dict:
    return {
      k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in dataclasses.asdict(self).items()
    }

  @classmethod
  def from_dict(cls, d: dict, where: str = "normalisation") -> "Normalisation":
    fields = [f.name for f in dataclasses.fields(cls)]
    missing = [f for f in fields if f not in d]
    if missing:
      raise ValueError(f"{where} lacks {missing}; expected the fields {fields}.")
    arrays = {
      k: np.asarray(d[k], np.float32) for k in ("eye_mean", "eye_std", "gaze_mean", "gaze_std")
    }
    for name in ("eye", "gaze"):
      mean, std = arrays[f"{name}_mean"], arrays[f"{name}_std"]
      if mean.ndim != 1 or std.shape != mean.shape or not np.isfinite([*mean, *std]).all():
        raise ValueError(
          f"{where}: {name}_mean has shape {mean.shape} and {name}_std {std.shape}; expected "
          "one finite value per column in each."
        )
      if (arrays[f"{name}_std"] <= 0).any():
        raise ValueError(f"{where}: {name}_std must be positive.")
    return cls(**arrays, **{k: d[k] for k in ("eye_clocks", "num_samples", "num_rows")})


def eye_clock_mode(config) -> str:
  mode = config.model.eye_clocks
  if mode not in EYE_CLOCKS:
    raise ValueError(f"model.eye_clocks is {mode!r}; expected one of {EYE_CLOCKS}.")
  return mode


def model_clock_columns(data: EmerSource, config) -> tuple[int, ...]:
  """The clock columns where the config needs them (relative clocks, clocks only), else ()."""
  if eye_clock_mode(config) == "absolute" and config.model.eye_columns == "all":
    return ()
  columns = data.metadata.get("eye_columns")
  if not columns:
    width = data.normalisation.eye_mean.shape[0] if data.normalisation else eye_export.NUM_COLUMNS
    columns = stored_eye_columns(width)
  return clock_columns(columns)


def normalisation_stats(data: EmerSource, indices, config) -> Normalisation:
  """Mean and std of `eye` (clocks as `config.model.eye_clocks` says) and `gaze` over every
  stored row of the samples at `indices`: a run's training part, never its test fold."""
  indices = np.asarray(indices, np.int64)
  if not len(indices):
    raise ValueError("Normalisation statistics need at least one training sample.")
  mode, clocks = eye_clock_mode(config), model_clock_columns(data, config)
  eye = gaze = None
  for i in indices:
    example = data.source[int(i)]
    if eye is None:
      eye, gaze = RunningStats(example["eye"].shape[1]), RunningStats(example["gaze"].shape[1])
    eye.add(eye_features(example["eye"], clocks, mode))
    gaze.add(example["gaze"])
  (eye_mean, eye_std), (gaze_mean, gaze_std) = eye.mean_std(), gaze.mean_std()
  return Normalisation.from_dict(
    dict(
      eye_mean=eye_mean,
      eye_std=eye_std,
      gaze_mean=gaze_mean,
      gaze_std=gaze_std,
      eye_clocks=mode,
      num_samples=len(indices),
      num_rows=eye.n,
    )
  )


def with_normalisation(data: EmerSource, indices, config) -> EmerSource:
  """`data` carrying the normalisation statistics of the samples at `indices` (a training part)."""
  return dataclasses.replace(data, normalisation=normalisation_stats(data, indices, config))


def load_normalisation(path: str) -> Normalisation:
  """A run's recorded statistics (`workdir.normalisation_path`); a missing file is an error."""
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"No normalisation statistics at {path}: the run that wrote the checkpoint records them "
      "there; inputs cannot be normalised without them."
    )
  with open(path) as f:
    return Normalisation.from_dict(json.load(f), path)


@dataclasses.dataclass(frozen=True)
class ClipSampler:
  """Turns one stored sample into fixed-size model inputs plus its targets."""

  num_frames: int
  num_eye_rows: int
  targets: tuple[str, ...]
  normalisation: Normalisation
  clocks: tuple[int, ...]  # clock columns of the stored eye rows
  eye_columns: str = "all"  # 'clocks': keep only the clock columns
  flip: bool = False
  bgr: bool = False

  def __call__(self, item, rng: np.random.Generator | None = None) -> dict:
    index, example = item
    face = example["face"]
    face = face[segment_indices(len(face), self.num_frames, rng)]
    if rng is not None and self.flip and rng.random() < 0.5:
      face = face[:, :, ::-1]
    if self.bgr:
      face = face[..., ::-1]
    norm = self.normalisation
    rows = segment_indices(len(example["eye"]), self.num_eye_rows, rng)
    eye = eye_features(example["eye"], self.clocks, norm.eye_clocks, rows)
    eye = (eye - norm.eye_mean) / norm.eye_std
    if self.eye_columns == "clocks":
      eye = eye[:, list(self.clocks)]
    out = {
      "face": np.ascontiguousarray(face, dtype=np.uint8),
      "eye": eye,
      "gaze": (example["gaze"][rows] - norm.gaze_mean) / norm.gaze_std,
      "fixation_map": np.asarray(example["fixation_map"], np.float32),
      "index": np.int32(index),
    }
    for name in self.targets:
      kind = TARGETS[name].kind
      out[name] = np.asarray(example[name], np.int32 if kind == "classification" else np.float32)
    return out


class _Take:
  """Random access to `source` at the given indices, returning (index, example)."""

  def __init__(self, source, indices):
    self._source, self._indices = source, np.asarray(indices, np.int64)

  def __len__(self):
    return len(self._indices)

  def __getitem__(self, i):
    index = int(self._indices[i])
    return index, self._source[index]


def normalisation(data: EmerSource) -> dict:
  """{'eye': (mean, std), 'gaze': (mean, std)}: what the eye and gaze rows are normalised by."""
  norm = data.normalisation
  return {"eye": (norm.eye_mean, norm.eye_std), "gaze": (norm.gaze_mean, norm.gaze_std)}


def clip_sampler(data: EmerSource, config, targets, *, train: bool) -> ClipSampler:
  norm = data.normalisation
  if norm is None:
    raise ValueError(
      "The source carries no normalisation statistics; attach those of the run's training part "
      "with `pipeline.with_normalisation(data, split.train, config)` (or a recorded run's with "
      "`dataclasses.replace(data, normalisation=pipeline.load_normalisation(path))`)."
    )
  if norm.eye_clocks != eye_clock_mode(config):
    raise ValueError(
      f"The normalisation statistics were computed with eye_clocks={norm.eye_clocks!r}; the "
      f"model config says {config.model.eye_clocks!r}."
    )
  eye_columns = config.model.eye_columns
  if eye_columns not in EYE_COLUMNS:
    raise ValueError(f"model.eye_columns is {eye_columns!r}; expected one of {EYE_COLUMNS}.")
  return ClipSampler(
    num_frames=config.input.num_frames,
    num_eye_rows=config.input.num_eye_rows,
    targets=tuple(targets),
    normalisation=norm,
    clocks=model_clock_columns(data, config),
    eye_columns=eye_columns,
    flip=train and config.input.flip,
    bgr=_channel_order(config) == "bgr",
  )


def _channel_order(config) -> str:
  order = config.input.get("channel_order", "rgb")
  if order not in ("rgb", "bgr"):
    raise ValueError(f"input.channel_order is {order!r}; expected 'rgb' or 'bgr'.")
  return order


def _read_options(config):
  # grain reads with no more threads than batches it may buffer.
  threads = config.input.num_threads
  return grain.ReadOptions(
    num_threads=threads, prefetch_buffer_size=max(config.input.prefetch, threads)
  )


def local_batch_size(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise ValueError(
      f"batch_size {global_batch} is not divisible by the {jax.process_count()} processes."
    )
  return global_batch // jax.process_count()


def train_dataset(data: EmerSource, indices, config, targets, *, seed: int) -> grain.IterDataset:
  """Endless shuffled training batches for this process (each process reads its own share)."""
  if len(indices) < config.batch_size:
    raise ValueError(
      f"The training part holds {len(indices)} samples, fewer than batch_size={config.batch_size}."
    )
  ds = grain.MapDataset.source(_Take(data.source, indices)).shuffle(seed=seed).repeat()
  ds = ds[jax.process_index() :: jax.process_count()]
  ds = ds.random_map(clip_sampler(data, config, targets, train=True), seed=seed)
  ds = ds.batch(local_batch_size(config.batch_size), drop_remainder=True)
  ds = ds.to_iter_dataset(_read_options(config))
  if config.input.workers > 0:
    ds = ds.mp_prefetch(grain.multiprocessing.MultiprocessingOptions(config.input.workers))
  return ds


def eval_layout(indices, global_batch: int) -> tuple[np.ndarray, np.ndarray]:
  """(indices, mask), each (num_batches, global_batch): `indices` in order, padded to whole
  batches by repeating from the start; `mask` marks the real entries."""
  indices = np.asarray(indices, np.int64)
  num_batches = -(-len(indices) // global_batch)
  padded = np.resize(indices, num_batches * global_batch).reshape(num_batches, global_batch)
  return padded, (np.arange(padded.size) < len(indices)).reshape(padded.shape)


def eval_dataset(data: EmerSource, indices, config, targets) -> grain.IterDataset:
  """One pass over `indices` in order, padded to whole global batches; `mask` marks real rows.

  Process p takes columns [p·L, (p+1)·L) of every global batch, so the global arrays that
  `make_array_from_process_local_data` assembles list the samples in their original order.
  """
  local = local_batch_size(config.eval_batch_size)
  padded, mask = eval_layout(indices, config.eval_batch_size)
  columns = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
  padded, mask = padded[:, columns].reshape(-1), mask[:, columns].reshape(-1)
  sampler = clip_sampler(data, config, targets, train=False)
  ds = grain.MapDataset.source(_Take(data.source, padded)).map(sampler)
  ds = ds.map_with_index(lambda i, x: x | {"mask": mask[i]})
  return ds.batch(local).to_iter_dataset(_read_options(config))


def to_global(batch: dict, mesh: jax.sharding.Mesh) -> dict:
  """Places a process-local batch on the mesh, split along its `data` axis."""
  sharding = NamedSharding(mesh, P("data"))
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
