"""The grain pipeline over a small in-memory source shaped like the `emer` features."""

import itertools
import json
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


NORMALISATION = pipeline.Normalisation(
  eye_mean=np.full(39, 1.0, np.float32),
  eye_std=np.full(39, 2.0, np.float32),
  gaze_mean=np.zeros(2, np.float32),
  gaze_std=np.ones(2, np.float32),
  eye_clocks="absolute",
  num_samples=40,
  num_rows=2000,
)


def _data(n=40):
  source = [_example(i) for i in range(n)]
  return EmerSource(source, {}, {}, NORMALISATION)


def _config(**kw):
  c = ml_collections.ConfigDict(
    dict(
      batch_size=8,
      eval_batch_size=16,
      input=dict(num_frames=4, num_eye_rows=5, flip=True, num_threads=1, prefetch=1, workers=0),
      model=dict(eye_clocks="absolute", eye_columns="all"),
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


def test_missing_or_mismatched_normalisation_is_an_error(tmp_path):
  bare = EmerSource(_data().source, {}, {})
  with pytest.raises(ValueError, match="no normalisation statistics"):
    pipeline.train_dataset(bare, np.arange(30), _config(), ("er_emotion",), seed=0)
  with pytest.raises(ValueError, match="computed with eye_clocks='absolute'"):
    pipeline.eval_dataset(_data(), np.arange(8), _config(model={"eye_clocks": "relative"}), ())
  with pytest.raises(FileNotFoundError, match="No normalisation statistics at"):
    pipeline.load_normalisation(str(tmp_path / "missing.json"))
  bad = NORMALISATION.to_dict() | {"eye_mean": [0.0] * 38}
  with pytest.raises(ValueError, match=r"eye_mean has shape \(38,\)"):
    pipeline.Normalisation.from_dict(bad)


def _clocked(i, shift=0.0, scale=1.0, num_rows=60):
  """A sample whose eye rows have integer clocks (exact in float32) starting at `shift`."""
  rng = np.random.default_rng(i)
  eye = rng.normal(size=(num_rows, 39)).astype(np.float32) * scale
  clocks = np.arange(num_rows) * 20 + 1000 * (i % 7)  # the clock tells the sample's label
  eye[:, 0] = clocks + shift
  eye[:, 1] = clocks * 1000 + 2**31 + shift
  return _example(i, num_rows=num_rows) | {"eye": eye}


def test_statistics_come_from_the_training_part_only_and_round_trip(tmp_path):
  cfg, train = _config(model={"eye_clocks": "relative"}), np.arange(30)
  plain = EmerSource([_clocked(i) for i in range(40)], {}, {})
  # Only the samples outside the training part (the test fold) have 1000× larger eye values.
  louder = EmerSource([_clocked(i, scale=1000.0 if i >= 30 else 1.0) for i in range(40)], {}, {})
  a, b = (pipeline.with_normalisation(d, train, cfg) for d in (plain, louder))
  assert a.normalisation.to_dict() == b.normalisation.to_dict()
  assert a.normalisation.num_samples == 30 and a.normalisation.num_rows == 30 * 60
  rows = np.concatenate([_clocked(i)["eye"] for i in train]).astype(np.float64)
  rows[:, :2] -= np.concatenate(
    [np.broadcast_to(_clocked(i)["eye"][0, :2], (60, 2)) for i in train]
  )
  np.testing.assert_allclose(a.normalisation.eye_mean, rows.mean(0), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(a.normalisation.eye_std, rows.std(0), rtol=1e-6)
  for x, y in zip(
    itertools.islice(pipeline.train_dataset(a, train, cfg, ("er_emotion",), seed=3), 4),
    itertools.islice(pipeline.train_dataset(b, train, cfg, ("er_emotion",), seed=3), 4),
    strict=True,
  ):
    np.testing.assert_array_equal(x["eye"], y["eye"])
  everything = pipeline.normalisation_stats(louder, np.arange(40), cfg)
  assert not np.allclose(everything.eye_std, a.normalisation.eye_std)
  path = tmp_path / "stats.json"
  path.write_text(json.dumps(a.normalisation.to_dict()))
  assert pipeline.load_normalisation(str(path)).to_dict() == a.normalisation.to_dict()


def _eye_batches(data, cfg):
  indices = np.arange(len(data))
  data = pipeline.with_normalisation(data, indices, cfg)
  return np.concatenate([b["eye"] for b in pipeline.eval_dataset(data, indices, cfg, ())])


def test_relative_clocks_ignore_a_shift_of_each_recording_absolute_ones_do_not():
  plain = EmerSource([_clocked(i) for i in range(40)], {}, {})
  shifted = EmerSource([_clocked(i, shift=2.0**20 * (1 + i % 3)) for i in range(40)], {}, {})
  relative, absolute = (_config(model={"eye_clocks": m}) for m in ("relative", "absolute"))
  np.testing.assert_array_equal(_eye_batches(plain, relative), _eye_batches(shifted, relative))
  assert not np.allclose(_eye_batches(plain, absolute), _eye_batches(shifted, absolute))
  # Only the clock columns differ between the two presentations.
  a, r = _eye_batches(plain, absolute), _eye_batches(plain, relative)
  np.testing.assert_array_equal(a[..., 2:], r[..., 2:])


def test_clocks_only_keeps_the_two_clock_columns():
  data = EmerSource([_clocked(i) for i in range(40)], {}, {})
  cfg = _config(model={"eye_clocks": "absolute", "eye_columns": "clocks"})
  clocks = _eye_batches(data, cfg)
  full = _eye_batches(data, _config())
  assert clocks.shape[-1] == 2
  np.testing.assert_array_equal(clocks, full[..., :2])
  renamed = EmerSource(data.source, {"eye_columns": ["x"] * 39}, {})
  with pytest.raises(ValueError, match="Expected the clock columns"):
    _eye_batches(renamed, cfg)


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
  cached = EmerSource(CachedSource(data.source), data.metadata, {}, data.normalisation)
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
