"""The grain pipeline over a small in-memory source shaped like the `emer` features."""

import itertools
import pickle

import jax
import ml_collections
import numpy as np
import pytest

from emer_jax.data import pipeline
from emer_jax.data.source import CachedSource, EmerSource


def _example(i, num_frames=12, num_rows=50):
  rng = np.random.default_rng(i)
  face = np.broadcast_to(
    np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, 4, 5, 3)
  ).copy()
  face[:, :, 0] = 200  # marks the left edge, to see flips
  return {
    "face": face,
    "eye": np.tile(np.arange(num_rows, dtype=np.float32)[:, None], (1, 39)),
    "gaze": rng.normal(size=(num_rows, 2)).astype(np.float32),
    "fixation_map": np.zeros((8, 8, 1), np.float32),
    "er_emotion": np.int64(i % 7),
    "er_valence": np.float32(0.25),
  }


def _data(n=40):
  source = [_example(i) for i in range(n)]
  metadata = {
    "eye_mean": [1.0] * 39,
    "eye_std": [2.0] * 39,
    "gaze_mean": [0, 0],
    "gaze_std": [1, 1],
  }
  return EmerSource(source, metadata, {})


def _config(**kw):
  c = ml_collections.ConfigDict(
    dict(
      batch_size=8,
      eval_batch_size=16,
      input=dict(num_frames=4, num_eye_rows=5, flip=True, num_threads=1, prefetch=1, workers=0),
    )
  )
  c.update(kw)
  return c


def test_segment_indices():
  np.testing.assert_array_equal(pipeline.segment_indices(12, 4), [1, 4, 7, 10])
  rng = np.random.default_rng(0)
  for _ in range(50):
    idx = pipeline.segment_indices(12, 4, rng)
    assert all(3 * k <= i < 3 * (k + 1) for k, i in enumerate(idx))
  np.testing.assert_array_equal(pipeline.segment_indices(2, 4), [0, 0, 1, 1])
  with pytest.raises(ValueError, match="empty"):
    pipeline.segment_indices(0, 4)


def test_train_batches_shapes_normalisation_and_determinism():
  data, cfg = _data(), _config()
  targets = ("er_emotion", "er_valence")
  first = list(
    enumerate(
      itertools.islice(pipeline.train_dataset(data, np.arange(30), cfg, targets, seed=1), 6)
    )
  )
  again = list(
    enumerate(
      itertools.islice(pipeline.train_dataset(data, np.arange(30), cfg, targets, seed=1), 6)
    )
  )
  batch = first[0][1]
  assert batch["face"].shape == (8, 4, 4, 5, 3) and batch["face"].dtype == np.uint8
  assert batch["eye"].shape == (8, 5, 39) and batch["gaze"].shape == (8, 5, 2)
  assert batch["er_emotion"].dtype == np.int32 and batch["er_valence"].dtype == np.float32
  # eye rows are (row - 1) / 2, one row drawn from each of 5 segments of 10
  rows = batch["eye"][..., 0] * 2 + 1
  assert ((rows >= np.arange(5) * 10) & (rows < np.arange(5) * 10 + 10)).all()
  for (_, a), (_, b) in zip(first, again, strict=True):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  indices = np.concatenate([b["index"] for _, b in first])
  assert set(indices) <= set(range(30))
  # one epoch (30 samples → 3 batches of 8, then the next epoch) sees distinct samples
  assert len(set(indices[:24])) == 24
  flipped = [b["face"][..., 0, -1, 0] == 200 for _, b in first]
  assert 0 < np.mean(flipped) < 1


def test_eval_pass_is_ordered_padded_and_masked():
  data, cfg = _data(), _config()
  indices = np.arange(3, 40, 2)  # 19 samples → 2 batches of 16
  batches = list(pipeline.eval_dataset(data, indices, cfg, ("er_emotion",)))
  assert len(batches) == 2
  index = np.concatenate([b["index"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(index[mask], indices)
  assert mask.sum() == 19 and not mask[19:].any()
  # evaluation takes segment centres and never flips
  np.testing.assert_array_equal(batches[0]["face"][0, :, 0, 1, 0], [1, 4, 7, 10])
  assert all((b["face"][..., 0, 0] == 200).all() for b in batches)


def test_small_training_part_is_an_error():
  with pytest.raises(ValueError, match="fewer than batch_size=8"):
    pipeline.train_dataset(_data(), np.arange(5), _config(), ("er_emotion",), seed=0)


def test_bad_normalisation_stats_are_named():
  data = _data()
  bad = EmerSource(data.source, {"eye_mean": [0.0] * 38, "eye_std": [1.0] * 38}, {})
  with pytest.raises(ValueError, match=r"eye_mean/eye_std have shapes \(38,\)"):
    pipeline.train_dataset(bad, np.arange(30), _config(), ("er_emotion",), seed=0)


def test_to_global_shards_over_data_axis():
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  batch = next(
    iter(pipeline.train_dataset(_data(), np.arange(30), _config(), ("er_emotion",), seed=0))
  )
  placed = pipeline.to_global(batch, mesh)
  assert placed["face"].shape == (8, 4, 4, 5, 3)
  assert placed["face"].sharding.spec == jax.sharding.PartitionSpec("data")
  np.testing.assert_array_equal(np.asarray(placed["eye"]), batch["eye"])


class _CountingSource(list):
  def __init__(self, items):
    super().__init__(items)
    self.reads = 0

  def __getitem__(self, i):
    self.reads += 1
    return {k: np.copy(v) for k, v in super().__getitem__(i).items()}


def test_cached_source_decodes_each_sample_once_and_hands_out_read_only_arrays():
  raw = _CountingSource(_data().source)
  cached = CachedSource(raw)
  first = [cached[i] for i in (3, 3, np.int64(3), 7)]
  assert raw.reads == 2 and len(cached) == 40
  assert first[0] is first[1] is first[2]
  with pytest.raises(ValueError, match="read-only"):
    first[0]["face"][0, 0, 0, 0] = 1
  # A copy (e.g. for a grain worker process) starts with an empty cache.
  copy = pickle.loads(pickle.dumps(cached))
  assert copy._cache == {}
  np.testing.assert_array_equal(copy[7]["gaze"], first[3]["gaze"])


def test_cached_source_gives_the_same_batches():
  data, cfg, targets = _data(), _config(), ("er_emotion", "er_valence")
  cached = EmerSource(CachedSource(data.source), data.metadata, {})
  for make in (
    lambda d: itertools.islice(pipeline.train_dataset(d, np.arange(30), cfg, targets, seed=2), 8),
    lambda d: pipeline.eval_dataset(d, np.arange(19), cfg, targets),
  ):
    for a, b in zip(make(data), make(cached), strict=True):
      for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_readers_are_never_capped_by_the_prefetch_buffer():
  # grain uses no more threads than batches it may buffer.
  cfg = _config()
  cfg.input.num_threads, cfg.input.prefetch = 16, 4
  assert pipeline._read_options(cfg).prefetch_buffer_size == 16
  cfg.input.prefetch = 32
  assert pipeline._read_options(cfg).prefetch_buffer_size == 32
