"""The dataset on the devices: evaluation equals the host pipeline; training sampling follows
`ClipSampler`'s distribution; shuffles are keyed by (seed, epoch) and (seed, step)."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from emer_jax.data import on_device, pipeline
from emer_jax.data.pipeline import Normalisation
from emer_jax.data.source import EmerSource

TARGETS = ("er_emotion", "er_valence")


def _example(i, num_frames=12, face_size=(4, 5), map_size=8):
  rng = np.random.default_rng(i)
  num_rows = 7 + 3 * i  # recordings of different lengths, padded on the devices
  face = np.broadcast_to(
    np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, *face_size, 3)
  ).copy()
  face[:, :, 0] = 200  # marks the left edge, to see flips
  face[..., 2] = 100 + i  # the blue channel names the sample, to see the channel order
  eye = rng.normal(size=(num_rows, 39)).astype(np.float32)
  eye[:, 0] = np.arange(num_rows)  # column 0 names the row
  return {
    "face": face,
    "eye": eye,
    "gaze": rng.normal(size=(num_rows, 2)).astype(np.float32),
    "fixation_map": rng.uniform(size=(map_size, map_size, 1)).astype(np.float32),
    "er_emotion": np.int64(i % 7),
    "er_valence": np.float32(i / 10),
  }


def fake_source(n=20, **example_kw):
  """An in-memory source shaped like `emer`'s, eye and gaze standardised by odd statistics."""
  rng = np.random.default_rng(99)
  metadata = {
    "eye_mean": rng.normal(size=39).tolist(),
    "eye_std": rng.uniform(0.2, 3, size=39).tolist(),
    "gaze_mean": [0.3, -0.1],
    "gaze_std": [0.7, 1.9],
  }
  norm = Normalisation.from_dict(
    metadata | {"eye_clocks": "absolute", "num_samples": n, "num_rows": 0}, "fake_source"
  )
  examples = [_example(i, **example_kw) for i in range(n)]
  return EmerSource(examples, metadata, {}, normalisation=norm)


def _config(**input_kw):
  return ml_collections.ConfigDict(
    dict(
      batch_size=8,
      eval_batch_size=6,
      input=dict(num_frames=4, num_eye_rows=5, flip=True, num_threads=1, prefetch=1, workers=0)
      | input_kw,
      model=dict(eye_clocks="absolute", eye_columns="all"),  # the reference variant's inputs
    )
  )


@functools.cache
def _device(**input_kw):
  data, config = fake_source(), _config(**input_kw)
  arrays = on_device.decode(data, TARGETS, num_frames=4, num_eye_rows=5)
  stats, options = on_device.sampling(data, config, TARGETS)
  return data, config, jax.device_put(arrays, jax.devices()[0]), stats, options


@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
def test_evaluation_inputs_equal_the_host_pipelines(channel_order):
  data, config, arrays, stats, options = _device(channel_order=channel_order)
  indices = np.array([3, 0, 19, 7, 11, 4, 15, 2, 9, 1, 12])  # 11 samples → 2 batches of 6
  host = list(pipeline.eval_dataset(data, indices, config, TARGETS))
  padded, mask = pipeline.eval_layout(indices, config.eval_batch_size)
  step = jax.jit(functools.partial(on_device.eval_batch, bgr=options["bgr"]))
  assert len(host) == len(padded) == 2
  for expected, batch_indices, batch_mask in zip(host, padded, mask, strict=True):
    got = jax.device_get(step(arrays, batch_indices, stats)) | {"mask": batch_mask}
    assert set(got) == set(expected)
    for key, value in expected.items():
      assert got[key].dtype == value.dtype, key
      np.testing.assert_array_equal(got[key], value, err_msg=key)


def _host_draws(data, config, indices, num):
  sampler = pipeline.clip_sampler(data, config, TARGETS, train=True)
  rng = np.random.default_rng(0)
  return [sampler((int(i), data.source[int(i)]), rng) for i in indices for _ in range(num)]


def test_training_sampling_follows_the_clip_samplers_distribution():
  data, config, arrays, stats, options = _device()
  # Sample 4: 12 frames in 4 segments of 3 and 19 eye rows in 5 segments of 3.8, so each
  # segment's items have unequal probabilities; compare item frequencies with the host's.
  num = 3000
  part = on_device.train_part(np.full(8, 4), batch_size=8)
  batches = jax.jit(
    jax.vmap(
      functools.partial(on_device.train_batch, batch_size=8, **options), (None, None, None, None, 0)
    )
  )(arrays, part, stats, 7, jnp.arange(num // 8))
  device = {
    "frames": np.asarray(batches["face"][..., 0, 1, 0]).reshape(-1, 4),
    "rows": np.rint(np.asarray(batches["eye"][..., 0]) * stats["eye"][1][0] + stats["eye"][0][0])
    .astype(int)
    .reshape(-1, 5),
    "flipped": np.asarray(batches["face"][..., 0, 0, -1, 0] == 200).reshape(-1),
  }
  host = _host_draws(data, config, [4], len(device["frames"]))
  host = {
    "frames": np.stack([h["face"][:, 0, 1, 0] for h in host]),
    "rows": np.stack(
      [np.rint(h["eye"][:, 0] * stats["eye"][1][0] + stats["eye"][0][0]) for h in host]
    ).astype(int),
    "flipped": np.array([h["face"][0, 0, -1, 0] == 200 for h in host]),
  }
  for name in ("frames", "rows"):
    d, h = device[name], host[name]
    for k in range(d.shape[1]):
      support = np.unique(h[:, k])
      assert set(np.unique(d[:, k])) == set(support), (name, k)
      freq_d = np.array([(d[:, k] == v).mean() for v in support])
      freq_h = np.array([(h[:, k] == v).mean() for v in support])
      np.testing.assert_allclose(freq_d, freq_h, atol=0.05, err_msg=f"{name} segment {k}")
  assert abs(device["flipped"].mean() - 0.5) < 0.05 and abs(host["flipped"].mean() - 0.5) < 0.05
  # a flip turns the whole clip; the sample's other inputs are its own
  faces = np.asarray(batches["face"]).reshape(-1, *batches["face"].shape[2:])
  assert ((faces[:, :, 0, -1, 0] == 200).all(1) | (faces[:, :, 0, 0, 0] == 200).all(1)).all()
  np.testing.assert_array_equal(np.asarray(batches["er_valence"]), np.float32(0.4))
  np.testing.assert_array_equal(
    np.asarray(batches["fixation_map"][0, 0]), data.source[4]["fixation_map"]
  )


def test_shuffling_covers_each_epoch_and_is_keyed_by_seed_and_step():
  _, _, arrays, stats, options = _device()
  part = on_device.stack_parts([np.arange(3, 20), np.arange(11)], batch_size=8)
  assert part["indices"].shape == (2, 17) and list(part["count"]) == [17, 11]
  fn = jax.jit(
    jax.vmap(
      jax.vmap(
        functools.partial(on_device.train_batch, batch_size=8, **options),
        (None, None, None, None, 0),
      ),
      (None, 0, None, 0, None),
    )
  )
  seeds = jnp.array([5, 5])
  index = np.asarray(fn(arrays, part, stats, seeds, jnp.arange(12))["index"])  # (2, 12, 8)
  for run, (count, first) in enumerate([(17, 3), (11, 0)]):
    stream = index[run].reshape(-1)
    for epoch in range(len(stream) // count):
      seen = stream[epoch * count : (epoch + 1) * count]
      np.testing.assert_array_equal(np.sort(seen), np.arange(first, first + count))
    assert not np.array_equal(stream[:count], stream[count : 2 * count])  # a new order each epoch
  # the batch of step s depends on (seed, s) only: computed alone it is the same
  alone = jax.jit(functools.partial(on_device.train_batch, batch_size=8, **options))
  one = on_device.train_part(np.arange(3, 20), batch_size=8)
  got = jax.device_get(alone(arrays, one, stats, 5, 9))
  np.testing.assert_array_equal(got["index"], index[0, 9])
  other = jax.device_get(alone(arrays, one, stats, 6, 9))
  assert not np.array_equal(other["index"], got["index"])


def test_placement_and_errors():
  assert on_device.placement("device", 10**12) == "device"
  assert on_device.placement("auto", 10) == "host"  # a CPU: the devices are host memory
  with pytest.raises(ValueError, match="input.placement is 'gpu'"):
    on_device.placement("gpu", 1)
  with pytest.raises(ValueError, match="fewer than batch_size=8"):
    on_device.train_part(np.arange(5), batch_size=8)
  bad = fake_source(3)
  bad.source[1]["gaze"] = bad.source[1]["gaze"][:-1]
  with pytest.raises(ValueError, match="Sample 1 has 10 eye rows but 9 gaze rows"):
    on_device.decode(bad, TARGETS, num_frames=4, num_eye_rows=5)
