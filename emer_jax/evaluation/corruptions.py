"""Input corruptions for the robustness protocol: pure, seeded `jnp` functions on a model batch.

A batch is what the evaluation pipeline gives the model (`emer_jax.data.pipeline`): `face`
uint8 (B, T, H, W, 3), `eye` (B, R, 39; a study's 22) and `gaze` (B, R, 2) rows normalised with
the dataset's statistics, `fixation_map` (B, S, S, 1) in [0, 1].
`corrupt(batch, key, corruption, amount)` returns the batch with the corruption applied at that
amount; it runs under `jit`, on the devices, batch by batch. Randomness comes from `key`, split
per sample, and the random choices (noise directions, which rows, where the patch goes) do not
depend on the amount, so a higher severity applies more of the same corruption to the same
sample.

What each corruption means:
- `remove`: the stream is absent, i.e. zeros of the model's input (`models.modality_dropout.
  absent`): the dataset's mean row for eye and gaze (zero after normalisation), an empty
  fixation map, black face frames.
- `noise`: Gaussian noise at a signal-to-noise ratio in dB. Eye and gaze features are
  normalised to unit variance over the dataset, so the signal power is 1 and the noise's
  standard deviation is 10^(−SNR/20) (20 dB: 0.1; −20 dB: 10, where the rows carry no signal).
- `drop_rows`: a share of the sampled eye-tracker rows become invalid, as in tracking loss,
  `contiguous` (one stretch) or `scattered` (rows drawn at random). An invalid row looks as it
  does after the dataset build (`tfds_emer.eye_export.fill_invalid`): its measured columns are
  interpolated linearly in time between the nearest valid rows (the nearest valid value before
  the first or after the last; the column's raw 0 when no row is valid), its validity columns
  read 0 and its movement type reads "eyes not found"; timestamps, event duration and event
  index keep their values (in a study's tracker schema: both eyes invalid, gaze, pupils and
  fixation flagged as not measured, time and event kept). The gaze rows are the same rows of
  the same tracker and are interpolated alike. The fixation map, rendered from all rows at build
  time, is unchanged.
- `occlusion`: a mid-grey square covering a share of the frame's area, at one random place
  per sample, the same in every frame.
- `blur`: Gaussian blur of every frame with this standard deviation in pixels.
- `brightness`: every pixel brighter by this share of the full range, clipped at white.
- `time_shift`: the eye and gaze rows lag the face frames by this share of the clip (the rows
  move later; the first row repeats at the start).
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from emer_jax.models.modality_dropout import absent
from tfds_emer import eye_export
from tfds_emer.trackers import schema

STREAMS = ("face", "eye", "gaze", "fixation_map")
EYE_STREAMS = ("eye", "gaze")
_COLUMN = {name: i for i, name in enumerate(eye_export.COLUMNS)}
_FIELD = {name: i for i, name in enumerate(schema.COLUMNS)}


@dataclasses.dataclass(frozen=True)
class InvalidRow:
  """How an invalid row reads in an eye stream: columns set to `marks`, columns kept as they are
  (clocks, events); the rest are interpolated."""

  marked: np.ndarray
  marks: np.ndarray  # raw values of the marked columns
  kept: np.ndarray


INVALID_ROW = {
  # EMER's 39 columns: validity 0, movement type "eyes not found".
  len(eye_export.COLUMNS): InvalidRow(
    np.array(
      [_COLUMN["Validity left"], _COLUMN["Validity right"], _COLUMN["Eye movement type code"]]
    ),
    np.array([0.0, 0.0, eye_export.EYES_NOT_FOUND], np.float32),
    np.array(
      [
        _COLUMN[c]
        for c in (
          "Recording timestamp",
          "Eyetracker timestamp",
          "Gaze event duration",
          "Eye movement type index",
        )
      ]
    ),
  ),
  # The tracker schema's 22: both eyes invalid, gaze, pupils and fixation not measured.
  len(schema.COLUMNS): InvalidRow(
    np.array(
      [_FIELD[c] for c in ("valid_left", "valid_right")]
      + [
        _FIELD[f"measured_{c}"]
        for c in ("gaze_x", "gaze_y", "pupil_left", "pupil_right", "fixation_x", "fixation_y")
      ]
    ),
    np.zeros(8, np.float32),
    np.array(
      [_FIELD[c] for c in ("time_ms", "event", "event_duration_ms")]
      + [
        _FIELD[f"measured_{c}"]
        for c in ("time_ms", "valid_left", "valid_right", "event", "event_duration_ms")
      ]
    ),
  ),
}


@dataclasses.dataclass(frozen=True)
class Corruption:
  """One kind of corruption of some streams; severities 1, 2, … apply `amounts` in order."""

  name: str
  modality: str  # the streams it changes, joined by '+'
  amounts: tuple[float, ...]
  unit: str
  needs: tuple[str, ...]  # streams a model must read for the corruption to concern it
  clean: float = 0.0  # the amount that is no corruption (severity 0)

  @property
  def label(self) -> str:
    return f"{self.name}({self.modality})"

  @property
  def streams(self) -> tuple[str, ...]:
    return tuple(self.modality.split("+"))

  def applies_to(self, read) -> bool:
    return set(self.needs) <= set(read)


def corruptions() -> tuple[Corruption, ...]:
  """Every corruption of the protocol, with its severities."""
  snr = (20.0, 10.0, 0.0, -10.0, -20.0)
  rows = (0.1, 0.25, 0.5, 0.75, 1.0)
  out = [Corruption("remove", s, (1.0,), "whole stream", (s,)) for s in STREAMS]
  for modality in ("eye", "gaze", "eye+gaze"):
    streams = tuple(modality.split("+"))
    out.append(Corruption("noise", modality, snr, "SNR in dB", streams, clean=math.inf))
  # Tracking loss concerns any model that reads eye-tracker rows; shown once, as eye+gaze.
  for name in ("drop_rows_contiguous", "drop_rows_scattered"):
    out.append(Corruption(name, "eye+gaze", rows, "share of rows invalid", ()))
  out += [
    Corruption("occlusion", "face", (0.1, 0.25, 0.5, 0.75), "share of the frame", ("face",)),
    Corruption("blur", "face", (1.0, 2.0, 4.0, 8.0), "sigma in pixels", ("face",)),
    Corruption("brightness", "face", (0.1, 0.2, 0.4, 0.6), "share of the range", ("face",)),
    Corruption("time_shift", "eye+gaze", (0.05, 0.1, 0.25, 0.5), "share of the clip", ("face",)),
  ]
  return tuple(out)


def for_model(read, names=None) -> tuple[Corruption, ...]:
  """The corruptions that concern a model reading the streams `read` (tracking loss and time
  shift need an eye stream; the time shift also the face), optionally only those `names`
  (a name such as 'noise', or a name and modality such as 'noise(eye+gaze)')."""
  read = set(read)
  known = {c.name for c in corruptions()} | {c.label for c in corruptions()}
  unknown = sorted(set(names or ()) - known)
  if unknown:
    raise ValueError(f"Unknown corruptions {unknown}; expected some of {sorted(known)}.")
  chosen = []
  for c in corruptions():
    if names and c.name not in names and c.label not in names:
      continue
    if c.applies_to(read) and read & set(c.streams):
      chosen.append(c)
  return tuple(chosen)


def find(name: str, modality: str) -> Corruption:
  for c in corruptions():
    if (c.name, c.modality) == (name, modality):
      return c
  raise KeyError(f"No corruption {name!r} of {modality!r}.")


# --- the corruptions, on one sample's arrays or a batch -----------------------------------


def gaussian_noise(x, key, snr_db):
  """x plus N(0, σ²) noise, σ = 10^(−snr_db/20) (x has unit signal power)."""
  sigma = jnp.power(10.0, -jnp.asarray(snr_db, jnp.float32) / 20.0).astype(x.dtype)
  return x + sigma * jax.random.normal(key, x.shape, x.dtype)


def invalid_rows(key, num_rows: int, share, contiguous: bool):
  """(num_rows,) booleans, True for the round(share · num_rows) rows made invalid; the rows of a
  smaller share are among those of a larger one (for the same key)."""
  count = jnp.round(share * num_rows).astype(jnp.int32)
  rows = jnp.arange(num_rows)
  if contiguous:
    start = jnp.floor(jax.random.uniform(key) * (num_rows - count + 1)).astype(jnp.int32)
    return (rows >= start) & (rows < start + count)
  rank = jnp.argsort(jnp.argsort(jax.random.uniform(key, (num_rows,))))
  return rank < count


def interpolate_invalid(x, invalid, fill):
  """Rows of x (R, F) marked invalid, interpolated linearly between the nearest valid rows,
  the nearest valid row at either end, and `fill` (F,) where no row is valid."""
  num_rows = x.shape[0]
  rows = jnp.arange(num_rows)
  before = jax.lax.cummax(jnp.where(invalid, -1, rows))
  after = jax.lax.cummin(jnp.where(invalid, num_rows, rows), reverse=True)
  lo = jnp.where(before < 0, after, before)
  hi = jnp.where(after >= num_rows, before, after)
  span = jnp.maximum(hi - lo, 1)
  weight = jnp.where(hi > lo, (rows - lo) / span, 0.0).astype(x.dtype)[:, None]
  lo, hi = jnp.clip(lo, 0, num_rows - 1), jnp.clip(hi, 0, num_rows - 1)
  filled = x[lo] * (1 - weight) + x[hi] * weight
  filled = jnp.where(invalid.all(), jnp.broadcast_to(fill, x.shape), filled)
  return jnp.where(invalid[:, None], filled, x)


def drop_eye_rows(eye, gaze, invalid, eye_stats, gaze_stats):
  """One sample's eye (R, 39, or a study's 22) and gaze (R, 2) rows with `invalid` rows as the
  build leaves them (see the module docstring); `*_stats` are the (mean, std) the pipeline
  normalised with. An eye stream of clock columns only (`eye_clocks_only`) keeps its values."""
  (eye_mean, eye_std), (gaze_mean, gaze_std) = eye_stats, gaze_stats
  zero_gaze = jnp.asarray(-gaze_mean / gaze_std, gaze.dtype)
  row = INVALID_ROW.get(eye.shape[-1])
  if row is None:
    return eye, interpolate_invalid(gaze, invalid, zero_gaze)
  zero_eye = jnp.asarray(-eye_mean / eye_std, eye.dtype)  # a raw 0, normalised
  out = interpolate_invalid(eye, invalid, zero_eye)
  out = out.at[:, row.kept].set(eye[:, row.kept])
  marks = np.zeros(eye.shape[-1], np.float32)
  marks[row.marked] = row.marks
  marks = jnp.asarray((marks - eye_mean) / eye_std, eye.dtype)
  out = out.at[:, row.marked].set(
    jnp.where(invalid[:, None], marks[row.marked], eye[:, row.marked])
  )
  return out, interpolate_invalid(gaze, invalid, zero_gaze)


def occlude(face, key, area):
  """A mid-grey square of `area` × the frame's area at a random place in every frame of one
  sample (T, H, W, 3); the square of a smaller area lies inside that of a larger one."""
  _, height, width, _ = face.shape
  side = jnp.round(jnp.sqrt(area) * min(height, width)).astype(jnp.int32)
  u = jax.random.uniform(key, (2,))
  top = jnp.floor(u[0] * (height - side + 1)).astype(jnp.int32)
  left = jnp.floor(u[1] * (width - side + 1)).astype(jnp.int32)
  ys, xs = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
  inside = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
  return jnp.where(inside[None, :, :, None], jnp.asarray(128, face.dtype), face)


def gaussian_blur(face, sigma, max_sigma: float):
  """Every frame of uint8 `face` (..., H, W, 3) blurred with a Gaussian of `sigma` pixels
  (separable, edges repeated; the kernel spans 3 × max_sigma), rounded back to uint8."""
  radius = math.ceil(3 * max_sigma)
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  sigma = jnp.asarray(sigma, jnp.float32)
  taps = jnp.where(
    sigma > 0, jnp.exp(-0.5 * (offsets / jnp.maximum(sigma, 1e-6)) ** 2), offsets == 0
  )
  taps = taps / taps.sum()
  x = face.astype(jnp.float32)
  for axis in (-3, -2):  # H, then W
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(x, pad, mode="edge")
    size = x.shape[axis]
    x = sum(
      taps[i] * jax.lax.slice_in_dim(padded, i, i + size, axis=axis % x.ndim)
      for i in range(2 * radius + 1)
    )
  return jnp.clip(jnp.round(x), 0, 255).astype(face.dtype)


def brighten(face, shift):
  """uint8 frames brighter by `shift` × 255, clipped at 255."""
  return jnp.clip(face.astype(jnp.float32) + shift * 255.0, 0, 255).round().astype(face.dtype)


def lag(rows, share):
  """Rows (B, R, F) moved later by round(share · R), the first row repeated at the start."""
  num_rows = rows.shape[1]
  shift = jnp.round(share * num_rows).astype(jnp.int32)
  index = jnp.maximum(jnp.arange(num_rows) - shift, 0)
  return rows[:, index]


# --- applying a corruption to a batch ------------------------------------------------------


def sample_keys(key, batch: int):
  """One key per sample of the batch."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(batch))


def corrupt(batch: dict, key, corruption: Corruption, amount: float, stats: dict) -> dict:
  """The batch with `corruption` applied at `amount` to the streams it names (those present).

  `stats` maps 'eye' and 'gaze' to the (mean, std) arrays the pipeline normalised with (only
  `drop_rows_*` reads them). `amount` may be traced: one program serves every severity.
  """
  out = dict(batch)
  streams = [s for s in corruption.streams if s in batch]
  if not streams:
    return out
  size = batch[streams[0]].shape[0]
  keys = sample_keys(key, size)
  name = corruption.name
  if name == "remove":
    for s in streams:
      out[s] = jnp.where(amount > 0, absent(batch[s]), batch[s])
  elif name == "noise":
    for i, s in enumerate(streams):
      stream_keys = jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys)
      out[s] = jax.vmap(gaussian_noise, (0, 0, None))(batch[s], stream_keys, amount)
  elif name.startswith("drop_rows"):
    out |= _drop_rows(batch, keys, amount, name.endswith("contiguous"), stats)
  elif name == "occlusion":
    out["face"] = jax.vmap(occlude, (0, 0, None))(batch["face"], keys, amount)
  elif name == "blur":
    out["face"] = gaussian_blur(batch["face"], amount, max(corruption.amounts))
  elif name == "brightness":
    out["face"] = brighten(batch["face"], amount)
  elif name == "time_shift":
    for s in streams:
      out[s] = lag(batch[s], amount)
  else:
    raise ValueError(f"Unknown corruption {name!r}.")
  return out


def _drop_rows(batch, keys, share, contiguous, stats):
  eye = batch.get("eye")
  gaze = batch.get("gaze")
  rows = (eye if eye is not None else gaze).shape[1]
  invalid = jax.vmap(lambda k: invalid_rows(k, rows, share, contiguous))(keys)
  eye_stats = tuple(np.asarray(a, np.float32) for a in stats["eye"])
  gaze_stats = tuple(np.asarray(a, np.float32) for a in stats["gaze"])
  if eye is None:  # a model without the eye stream: only its gaze rows
    eye = jnp.zeros(gaze.shape[:2] + (len(eye_export.COLUMNS),), gaze.dtype)
  if gaze is None:
    gaze = jnp.zeros(eye.shape[:2] + (2,), eye.dtype)
  new_eye, new_gaze = jax.vmap(drop_eye_rows, (0, 0, 0, None, None))(
    eye, gaze, invalid, eye_stats, gaze_stats
  )
  return {k: v for k, v in (("eye", new_eye), ("gaze", new_gaze)) if k in batch}


def make_corrupt_fn(stats: dict) -> Callable:
  """A jit-compiled `fn(batch, key, corruption, amount)`, compiled once per corruption."""
  compiled = jax.jit(
    lambda batch, key, corruption, amount: corrupt(batch, key, corruption, amount, stats),
    static_argnums=2,
  )
  return lambda batch, key, corruption, amount: compiled(
    batch, key, corruption, jnp.float32(amount)
  )
