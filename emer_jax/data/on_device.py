"""The decoded dataset on the devices, and the per-step input work inside the compiled step.

When the dataset fits (EMER-Sim < 1 GB decoded, real EMER about 1.9 GB), it is put on the
devices once; each step then gathers its batch there: the epoch's shuffle, one random item per
segment, flips, normalisation and channel order, with `jax.random` keys derived from
(run seed, epoch) and (run seed, step). No random state is carried, so a run is reproducible
and a resume at any step is bit-exact. Training batches follow `pipeline.ClipSampler`'s
distribution; evaluation batches equal the host pipeline's exactly (segment centres, computed
on the host by `pipeline.segment_indices`).

A run's training part is `{"indices": (n_max,), "count": ()}`: its sample indices padded to a
common length, so that runs with parts of different sizes stack along a leading run axis.
"""

import jax
import jax.numpy as jnp
import numpy as np

from emer_jax import config_check
from emer_jax.data import pipeline
from emer_jax.data.source import EmerSource
from emer_jax.protocols import TARGETS

PLACEMENTS = config_check.PLACEMENTS
# `auto` puts the data on the devices when it takes at most this share of a device's memory.
_AUTO_SHARE = 0.25
# Tags separating the key streams drawn from one run seed.
_SHUFFLE, _SAMPLE = 0, 1


def decode(
  data: EmerSource,
  targets,
  *,
  num_frames: int,
  num_eye_rows: int,
  clocks: tuple[int, ...] = (),
  eye_clocks: str = "absolute",
) -> dict:
  """Every sample of `data` as host arrays padded to the longest face clip and eye recording.

  Beside the padded `face`, `eye`, `gaze` and `fixation_map` it holds their lengths, the
  evaluation items of every sample (`face_centres`, `eye_centres`) and the `labels` of
  `targets`. Eye rows are stored as the model sees them (`pipeline.eye_features`: the
  `clocks` columns absolute or relative to the sample's first row).
  """
  examples = [data.source[i] for i in range(len(data))]
  if eye_clocks != "absolute":
    examples = [e | {"eye": pipeline.eye_features(e["eye"], clocks, eye_clocks)} for e in examples]
  face_length = np.array([len(e["face"]) for e in examples], np.int32)
  eye_length = np.array([len(e["eye"]) for e in examples], np.int32)
  for i, e in enumerate(examples):
    if len(e["gaze"]) != eye_length[i]:
      raise ValueError(
        f"Sample {i} has {eye_length[i]} eye rows but {len(e['gaze'])} gaze rows; "
        "expected one gaze row per eye row."
      )

  def padded(name, length):
    first = examples[0][name]
    out = np.zeros((len(examples), max(length), *first.shape[1:]), first.dtype)
    for i, e in enumerate(examples):
      out[i, : len(e[name])] = e[name]
    return out

  arrays = {
    "face": padded("face", face_length),
    "face_length": face_length,
    "eye": padded("eye", eye_length),
    "gaze": padded("gaze", eye_length),
    "eye_length": eye_length,
    "fixation_map": np.stack([np.asarray(e["fixation_map"], np.float32) for e in examples]),
    "face_centres": np.stack([pipeline.segment_indices(n, num_frames) for n in face_length]),
    "eye_centres": np.stack([pipeline.segment_indices(n, num_eye_rows) for n in eye_length]),
  }
  arrays["labels"] = {
    name: np.array(
      [e[name] for e in examples],
      np.int32 if TARGETS[name].kind == "classification" else np.float32,
    )
    for name in targets
  }
  return arrays


def decode_for(data: EmerSource, config, targets) -> dict:
  """`decode` with the config's input sizes and eye clocks (what the host's sampler gives)."""
  if config.model.eye_columns != "all":
    raise config_check.ConfigError(
      f"model.eye_columns={config.model.eye_columns!r}: the data on the devices serves the "
      "'all' columns only; set input.placement='host'."
    )
  return decode(
    data,
    targets,
    num_frames=config.input.num_frames,
    num_eye_rows=config.input.num_eye_rows,
    clocks=pipeline.model_clock_columns(data, config),
    eye_clocks=pipeline.eye_clock_mode(config),
  )


def nbytes(arrays: dict) -> int:
  return sum(np.asarray(x).nbytes for x in jax.tree.leaves(arrays))


def placement(choice: str, size) -> str:
  """'device' or 'host' for `input.placement`; `auto` takes the devices when the data fits.

  `size` is the decoded dataset's bytes, or a function computing them (called only when
  needed). On a CPU the "devices" are host memory with one copy each, so `auto` stays on the
  host; so it does when several processes share the job (each reads its own shard there).
  """
  if choice not in PLACEMENTS:
    raise ValueError(f"input.placement is {choice!r}; expected one of {PLACEMENTS}.")
  if choice != "auto":
    return choice
  if jax.default_backend() == "cpu" or jax.process_count() > 1:
    return "host"
  size = size() if callable(size) else size
  limits = [(d.memory_stats() or {}).get("bytes_limit") for d in jax.local_devices()]
  if None in limits:
    return "host"
  return "device" if size <= _AUTO_SHARE * min(limits) else "host"


def put(arrays: dict, sharding: jax.sharding.Sharding) -> dict:
  """The decoded dataset on the devices of `sharding` (replicated: every device gathers)."""
  return jax.device_put(arrays, sharding)


def sampling(data: EmerSource, config, targets) -> tuple[dict, dict]:
  """(stats, options) of the host's training sampler: the eye and gaze (mean, std) that
  `train_batch`/`eval_batch` take as `stats`, and their `flip` and `bgr` options."""
  sampler = pipeline.clip_sampler(data, config, targets, train=True)
  return pipeline.normalisation(data), {"flip": sampler.flip, "bgr": sampler.bgr}


def train_part(indices, batch_size: int, size: int | None = None) -> dict:
  """A run's training part, padded to `size` (default: its own length)."""
  indices = np.asarray(indices, np.int32)
  if len(indices) < batch_size:
    raise ValueError(
      f"The training part holds {len(indices)} samples, fewer than batch_size={batch_size}."
    )
  size = size or len(indices)
  return {
    "indices": np.pad(indices, (0, size - len(indices))),
    "count": np.int32(len(indices)),
  }


def stack_parts(parts: list, batch_size: int) -> dict:
  """Training parts of several runs padded to one length, stacked on a leading run axis."""
  size = max(len(p) for p in parts)
  padded = [train_part(p, batch_size, size) for p in parts]
  return jax.tree.map(lambda *x: np.stack(x), *padded)


def _permutation(part, key):
  """A uniform permutation of the part's first `count` entries (traced `count`)."""
  order = jax.random.uniform(key, part["indices"].shape)
  order = jnp.where(jnp.arange(order.shape[0]) < part["count"], order, 2.0)
  return jnp.argsort(order)


def shuffled_indices(part: dict, seed, step, batch_size: int):
  """The sample indices of training step `step` (0-based): epoch after epoch, each a fresh
  permutation of the part keyed by (seed, epoch), batches running on across epochs, as the
  host pipeline's shuffled and repeated stream. Needs batch_size ≤ count."""
  count = part["count"]
  position = step * batch_size + jnp.arange(batch_size)
  epoch, offset = position // count, position % count
  stream = jax.random.fold_in(jax.random.key(seed), _SHUFFLE)
  first = _permutation(part, jax.random.fold_in(stream, epoch[0]))
  second = _permutation(part, jax.random.fold_in(stream, epoch[0] + 1))
  order = jnp.where(epoch == epoch[0], first[offset], second[offset])
  return part["indices"][order]


def _random_segments(key, lengths, num: int):
  """One uniform point per equal segment of [0, length), floored: `segment_indices` with rng."""
  u = jax.random.uniform(key, (lengths.shape[0], num))
  lengths = lengths[:, None]
  points = (jnp.arange(num) + u) * lengths.astype(jnp.float32) / num
  return jnp.clip(jnp.floor(points).astype(jnp.int32), 0, lengths - 1)


def _normalise(x, mean, std):
  # XLA turns x / broadcast(std) into x * broadcast(1 / std), one rounding more than the host
  # pipeline's division; dividing by a materialised broadcast keeps the results identical.
  return (x - mean) / jax.lax.optimization_barrier(jnp.broadcast_to(std, x.shape))


def _inputs(data, indices, frames, rows, stats, flips, *, bgr: bool) -> dict:
  face = data["face"][indices[:, None], frames]  # (B, T, H, W, 3)
  if flips is not None:
    face = jnp.where(flips[:, None, None, None, None], face[:, :, :, ::-1], face)
  if bgr:
    face = face[..., ::-1]
  batch = {
    "face": face,
    "eye": _normalise(data["eye"][indices[:, None], rows], *stats["eye"]),
    "gaze": _normalise(data["gaze"][indices[:, None], rows], *stats["gaze"]),
    "fixation_map": data["fixation_map"][indices],
    "index": indices.astype(jnp.int32),
  }
  return batch | {name: labels[indices] for name, labels in data["labels"].items()}


def train_batch(
  data: dict, part: dict, stats: dict, seed, step, *, batch_size: int, flip: bool, bgr: bool
) -> dict:
  """The training batch of `step` for one run, as `pipeline.train_dataset` would give it."""
  indices = shuffled_indices(part, seed, step, batch_size)
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _SAMPLE), step)
  k_frames, k_rows, k_flip = jax.random.split(key, 3)
  frames = _random_segments(k_frames, data["face_length"][indices], data["face_centres"].shape[1])
  rows = _random_segments(k_rows, data["eye_length"][indices], data["eye_centres"].shape[1])
  flips = jax.random.bernoulli(k_flip, 0.5, (batch_size,)) if flip else None
  return _inputs(data, indices, frames, rows, stats, flips, bgr=bgr)


def eval_batch(data: dict, indices, stats: dict, *, bgr: bool) -> dict:
  """The evaluation inputs of `indices`: segment centres, no flips, as the host pipeline's."""
  frames, rows = data["face_centres"][indices], data["eye_centres"][indices]
  return _inputs(data, indices, frames, rows, stats, None, bgr=bgr)
