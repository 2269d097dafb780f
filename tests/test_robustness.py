"""Robustness protocol: the corruptions, modality dropout, and the command on a tiny run."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from emer_jax import models
from emer_jax.evaluation import corruptions as C
from emer_jax.models.modality_dropout import ModalityDropout, drop_mask
from tests.model_testing import forward, tiny_config, tiny_inputs
from tests.test_train import TINY
from tfds_emer import eye_export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = 32
# Normalisation statistics of a made-up dataset (eye columns have their own mean and std).
STATS = {
  "eye": (np.linspace(-1, 2, 39).astype(np.float32), np.linspace(0.5, 3, 39).astype(np.float32)),
  "gaze": (np.array([900.0, 500.0], np.float32), np.array([300.0, 200.0], np.float32)),
}


def _batch(seed=0, size=3):
  rng = np.random.default_rng(seed)
  return {
    # Values below 128, so an occluding mid-grey patch changes every pixel it covers.
    "face": jnp.asarray(rng.integers(0, 128, (size, 2, 24, 24, 3)), jnp.uint8),
    "eye": jnp.asarray(rng.normal(size=(size, ROWS, 39)), jnp.float32),
    "gaze": jnp.asarray(rng.normal(size=(size, ROWS, 2)), jnp.float32),
    "fixation_map": jnp.asarray(rng.random((size, 16, 16, 1)), jnp.float32),
  }


CORRUPT = C.make_corrupt_fn(STATS)
KEY = jax.random.key(3)
ALL = C.corruptions()


@pytest.mark.parametrize("corruption", ALL, ids=[f"{c.name}-{c.modality}" for c in ALL])
def test_severity_zero_is_the_identity(corruption):
  batch = _batch()
  out = CORRUPT(batch, KEY, corruption, corruption.clean)
  for name, value in batch.items():
    np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(value), err_msg=name)


def _amount_applied(corruption, clean, out):
  """How much of the corruption `out` carries, measured on the inputs."""
  if corruption.name.startswith("drop_rows"):  # rows whose validity reads invalid
    invalid = (0 - STATS["eye"][0][16]) / STATS["eye"][1][16]
    return float(np.sum(np.isclose(out["eye"][..., 16], invalid)))
  if corruption.name == "occlusion":  # pixels covered
    return float(np.sum(out["face"] != clean["face"]))
  if corruption.name == "time_shift":  # on ramps x[t] = t, the lag in rows
    return float(np.mean(clean["eye"] - out["eye"]))
  return float(
    sum(np.abs(np.asarray(out[s], np.float64) - clean[s]).mean() for s in corruption.streams)
  )


@pytest.mark.parametrize("corruption", ALL, ids=[f"{c.name}-{c.modality}" for c in ALL])
def test_severities_apply_more_and_more(corruption):
  batch = _batch(1)
  if corruption.name == "time_shift":
    ramp = jnp.arange(ROWS, dtype=jnp.float32)[None, :, None]
    batch["eye"] = jnp.broadcast_to(ramp, batch["eye"].shape)
    batch["gaze"] = jnp.broadcast_to(ramp, batch["gaze"].shape)
  clean = {k: np.asarray(v, np.float64) for k, v in batch.items()}
  applied = [0.0] + [
    _amount_applied(corruption, clean, CORRUPT(batch, KEY, corruption, a))
    for a in corruption.amounts
  ]
  assert all(b > a for a, b in zip(applied[:-1], applied[1:], strict=True)), applied
  changed = set()
  out = CORRUPT(batch, KEY, corruption, corruption.amounts[-1])
  for name in batch:
    if not np.array_equal(np.asarray(out[name]), np.asarray(batch[name])):
      changed.add(name)
  assert changed == set(corruption.streams)


def test_invalid_rows_nest_and_look_like_the_builds():
  key = jax.random.key(0)
  for contiguous in (True, False):
    masks = [np.asarray(C.invalid_rows(key, ROWS, s, contiguous)) for s in (0.1, 0.5, 0.9)]
    assert [m.sum() for m in masks] == [3, 16, 29]
    assert np.all(masks[0] <= masks[1]) and np.all(masks[1] <= masks[2])
    if contiguous:
      assert np.all(np.diff(np.flatnonzero(masks[1])) == 1)
  # A raw export whose rows 5–12 are lost, filled as the dataset build fills them.
  rng = np.random.default_rng(0)
  raw = rng.normal(size=(ROWS, 39)).astype(np.float32) * 50 + 100
  invalid = np.zeros(ROWS, bool)
  invalid[5:13] = True
  lost = raw.copy()
  kept = [0, 1, 16, 17, 34, 35, 36]
  lost[np.ix_(invalid, [c for c in range(39) if c not in kept])] = np.nan
  lost[invalid, 16] = lost[invalid, 17] = 0.0
  lost[invalid, 34] = eye_export.EYES_NOT_FOUND
  expected = eye_export.fill_invalid(lost)
  mean, std = STATS["eye"]
  gaze_mean, gaze_std = STATS["gaze"]
  eye, gaze = C.drop_eye_rows(
    jnp.asarray((raw - mean) / std),
    jnp.asarray((raw[:, 2:4] - gaze_mean) / gaze_std),
    jnp.asarray(invalid),
    STATS["eye"],
    STATS["gaze"],
  )
  np.testing.assert_allclose(np.asarray(eye) * std + mean, expected, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(
    np.asarray(gaze) * gaze_std + gaze_mean, expected[:, 2:4], rtol=1e-5, atol=1e-3
  )


def test_removing_a_stream_the_model_does_not_read_changes_nothing():
  config = tiny_config(modalities=("eye", "gaze"))
  model = models.build_model(config, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  batch = {k: jnp.asarray(v) for k, v in tiny_inputs(batch=3).items()}
  batch["face"] = (batch["face"] * 255).astype(jnp.uint8)
  clean = forward(model, batch)["heads"]["er_emotion"]
  for stream in ("face", "fixation_map"):
    out = forward(model, CORRUPT(batch, KEY, C.find("remove", stream), 1.0))["heads"]["er_emotion"]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(clean))
  out = forward(model, CORRUPT(batch, KEY, C.find("remove", "eye"), 1.0))["heads"]["er_emotion"]
  assert not np.allclose(np.asarray(out), np.asarray(clean))
  assert [c.streams for c in C.for_model(("eye", "gaze"), ["remove"])] == [("eye",), ("gaze",)]
  assert not C.for_model(("face",), ["noise", "drop_rows_scattered", "time_shift"])


def test_modality_dropout_never_drops_every_stream():
  drop = np.asarray(drop_mask(jax.random.key(0), 20000, 3, 0.9))
  assert not drop.all(axis=1).any()
  assert drop.any(axis=1).mean() > 0.9  # most samples do lose streams
  assert np.asarray(drop_mask(jax.random.key(0), 1000, 3, 0.0)).sum() == 0
  layer = ModalityDropout(0.5, ("eye", "gaze"), rngs=nnx.Rngs(dropout=0))
  batch = {k: jnp.ones_like(v) for k, v in _batch(size=64).items()}
  out = layer(batch)
  gone = {s: np.asarray((out[s] == 0).reshape(64, -1).all(1)) for s in ("eye", "gaze")}
  assert not (gone["eye"] & gone["gaze"]).any() and gone["eye"].any() and gone["gaze"].any()
  np.testing.assert_array_equal(np.asarray(out["face"]), np.asarray(batch["face"]))
  layer.eval()
  assert layer(batch) is batch


def test_modality_dropout_zero_builds_todays_model():
  config = tiny_config(modalities=("eye", "gaze"))
  assert config.modality_dropout == 0.0
  without = ml_collections.ConfigDict(config.to_dict())
  del without["modality_dropout"]
  built = [
    models.build_model(c, heads={"er_emotion": 7}, rngs=nnx.Rngs(0)) for c in (config, without)
  ]
  assert jax.tree.structure(nnx.state(built[0])) == jax.tree.structure(nnx.state(built[1]))
  jax.tree.map(np.testing.assert_array_equal, *(nnx.state(m, nnx.Param) for m in built))
  config.modality_dropout = 0.5
  model = models.build_model(config, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  assert isinstance(model.encoders.modality_dropout, ModalityDropout)


def _python(*args):
  proc = subprocess.run(
    [sys.executable, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=900,
    env={**os.environ, "PYTHONPATH": REPO},
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc.stdout


@pytest.mark.slow
def test_robustness_command_and_suite_option_on_a_tiny_run(small_data_dir, tmp_path):
  from configs.suite import get_config as suite_config
  from emer_jax.suite import run_suite

  overrides = {
    "data_dir": small_data_dir,
    "folds": (1,),
    "total_steps": 4,
    "eval_every_steps": 2,
    "log_every_steps": 2,
  }
  for flag in TINY:
    key, value = flag.removeprefix("--config.").split("=")
    node = overrides
    *parents, leaf = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = eval(value)
  suite = suite_config("small")
  suite.protocols = ("er7",)
  suite.model_names = ("emert",)
  suite.overrides = ml_collections.ConfigDict(overrides)
  workdir = tmp_path / "suite"
  run_suite(suite, str(workdir))  # trains the cell
  run = workdir / "er7" / "emert"

  # One corruption of each kind of stream (the rest differ only in their jnp function).
  chosen = "remove,noise(eye+gaze),drop_rows_scattered,occlusion,time_shift"
  out = _python(
    "-m", "emer_jax.evaluation.robustness", f"--workdir={run}", f"--corruptions={chosen}"
  )
  robustness = run / "robustness"
  assert f"wrote robustness table: {robustness}/robustness.md" in out
  assert f"wrote plot: {robustness}/degradation.png" in out
  assert not out.rstrip().endswith("}")  # no JSON dict as the last word
  report = json.loads((run / "robustness" / "robustness.json").read_text())
  results = json.loads((run / "results.json").read_text())
  rows = report["rows"]
  assert all(set(r) >= {"corruption", "modality", "severity", "metrics", "runs"} for r in rows)
  none = rows[0]
  assert (none["corruption"], none["severity"]) == ("none", 0)
  assert none["metrics"] == results["mean"]
  assert none["runs"][0]["metrics"] == results["mean"]  # one run
  names = {(r["corruption"], r["modality"]) for r in rows}
  assert {("remove", "face"), ("remove", "eye"), ("remove", "gaze")} <= names
  assert ("remove", "fixation_map") not in names  # not a stream this model reads
  for c in C.for_model(("face", "eye", "gaze"), chosen.split(",")):
    severities = [
      r["severity"] for r in rows if (r["corruption"], r["modality"]) == (c.name, c.modality)
    ]
    assert severities == list(range(1, len(c.amounts) + 1)), c
  assert set(rows[1]["metrics"]) == set(results["mean"])
  assert (run / "robustness" / "degradation.png").stat().st_size > 0
  table = pd.read_csv(run / "robustness" / "robustness.csv")
  assert len(table) == 3 * len(rows)  # one run, its mean and its std per row
  assert "| none |" in (run / "robustness" / "robustness.md").read_text()

  # The suite option tabulates every cell's report.
  suite.robustness = True
  suite.robustness_corruptions = tuple(chosen.split(","))
  run_suite(suite, str(workdir))
  table = pd.read_csv(workdir / "robustness.csv")
  assert list(table["model"]) == ["emert"]
  assert float(table["er7 none er_emotion/war"].iloc[0].strip("*")) == pytest.approx(
    results["mean"]["er_emotion/war"], abs=5e-4
  )
  assert "remove(face)@1 er_emotion/war" in " ".join(table.columns)
