"""grain input pipelines: segment sampling, normalisation, batching, placement on the mesh.

EMERT sees a fixed number of face frames and eye/gaze rows per sample. Following the reference,
each sequence is cut into equal segments and one item is taken per segment: a random one in
training, the segment centre in evaluation.
"""

import dataclasses

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emer_jax.data.source import EmerSource
from emer_jax.protocols import TARGETS


def segment_indices(length: int, num: int, rng: np.random.Generator | None = None) -> np.ndarray:
  """One index per equal segment of [0, length): random with `rng`, else the segment centre."""
  if length < 1:
    raise ValueError(f"Cannot sample {num} items from an empty sequence.")
  edges = np.linspace(0.0, length, num + 1)
  points = (edges[:-1] + edges[1:]) / 2 if rng is None else rng.uniform(edges[:-1], edges[1:])
  return np.clip(np.floor(points).astype(np.int64), 0, length - 1)


def _stats(metadata: dict, name: str, width: int):
  mean = np.asarray(metadata.get(f"{name}_mean", np.zeros(width)), np.float32)
  std = np.asarray(metadata.get(f"{name}_std", np.ones(width)), np.float32)
  if mean.shape != (width,) or std.shape != (width,):
    raise ValueError(
      f"Dataset metadata {name}_mean/{name}_std have shapes {mean.shape}/{std.shape}; "
      f"expected ({width},)."
    )
  return mean, np.where(std > 0, std, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ClipSampler:
  """Turns one stored sample into fixed-size model inputs plus its targets."""

  num_frames: int
  num_eye_rows: int
  targets: tuple[str, ...]
  eye_stats: tuple[np.ndarray, np.ndarray]
  gaze_stats: tuple[np.ndarray, np.ndarray]
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
    rows = segment_indices(len(example["eye"]), self.num_eye_rows, rng)
    out = {
      "face": np.ascontiguousarray(face, dtype=np.uint8),
      "eye": (example["eye"][rows] - self.eye_stats[0]) / self.eye_stats[1],
      "gaze": (example["gaze"][rows] - self.gaze_stats[0]) / self.gaze_stats[1],
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


def _sampler(data: EmerSource, config, targets, *, train: bool) -> ClipSampler:
  return ClipSampler(
    num_frames=config.input.num_frames,
    num_eye_rows=config.input.num_eye_rows,
    targets=tuple(targets),
    eye_stats=_stats(data.metadata, "eye", 39),
    gaze_stats=_stats(data.metadata, "gaze", 2),
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
  ds = ds.random_map(_sampler(data, config, targets, train=True), seed=seed)
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
  sampler = _sampler(data, config, targets, train=False)
  ds = grain.MapDataset.source(_Take(data.source, padded)).map(sampler)
  ds = ds.map_with_index(lambda i, x: x | {"mask": mask[i]})
  return ds.batch(local).to_iter_dataset(_read_options(config))


def to_global(batch: dict, mesh: jax.sharding.Mesh) -> dict:
  """Places a process-local batch on the mesh, split along its `data` axis."""
  sharding = NamedSharding(mesh, P("data"))
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
