"""An authors' checkpoint, converted by the command, evaluated by `emer_jax.main`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emer_jax.convert import load_reference_checkpoint, reference_forward
from emer_jax.data import pipeline
from emer_jax.data.source import open_source
from emer_jax.data.splits import make_split
from tests import faults

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO.parent / "shared" / "reference" / "reference_emert_weights.pth"


def _run(*args):
  out = subprocess.run(
    [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=900
  )
  assert out.returncode == 0, out.stdout + out.stderr
  faults.assert_clean_exit(out.stdout + out.stderr)


@pytest.mark.skipif(not CHECKPOINT.exists(), reason=f"reference fixtures not at {CHECKPOINT}")
def test_main_evaluates_a_converted_pth_with_reference_forward_logits(small_data_dir, tmp_path):
  converted, workdir = tmp_path / "converted", tmp_path / "eval"
  _run("emer_jax.convert", f"--checkpoint={CHECKPOINT}", f"--output={converted}")
  _run(
    "emer_jax.main",
    f"--config=configs/converted.py:{converted}",
    "--config.mode=eval",
    "--config.dataset=emer/synthetic_small",
    f"--config.data_dir={small_data_dir}",
    "--config.folds=(1,)",
    f"--workdir={workdir}",
  )
  predictions = pd.read_csv(workdir / "eval" / "predictions_fold1_seed0.csv")
  probabilities = predictions.filter(like="prob_").to_numpy()

  from configs.converted import get_config

  config = get_config(str(converted))
  data = open_source("emer/synthetic_small", small_data_dir, prepare=False)
  split = make_split(data.index["fold"], data.index["subject_id"], 1, seed=config.seed)
  data = pipeline.with_normalisation(data, split.train, config)
  model, _ = load_reference_checkpoint(CHECKPOINT)
  logits = []
  for batch in pipeline.eval_dataset(data, split.test, config, ("er_emotion",)):
    face_nchw = np.moveaxis(batch["face"].astype(np.float32) / 255, -1, 2)
    out = reference_forward(model, face_nchw, batch["eye"], batch["gaze"])
    logits.append(out["out/emotion_logits"])
  logits = np.concatenate(logits)[: len(split.test)]
  expected = np.exp(logits - logits.max(-1, keepdims=True))
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_array_equal(predictions["sample_id"], data.index["sample_id"][split.test])
  np.testing.assert_allclose(probabilities, expected, atol=1e-5)
  assert os.path.exists(workdir / "eval" / "results.json")
  assert not os.path.exists(workdir / "runs")  # eval mode writes nothing training owns


@pytest.mark.skipif(not CHECKPOINT.exists(), reason=f"reference fixtures not at {CHECKPOINT}")
def test_a_conversion_killed_midway_leaves_the_earlier_one(tmp_path):
  from emer_jax.train.checkpoint import model_metadata

  output = tmp_path / "converted"
  _run("emer_jax.convert", f"--checkpoint={CHECKPOINT}", f"--output={output}")
  (output / "notes.txt").write_text("mine")
  before = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
  proc = subprocess.Popen(
    [sys.executable, "-m", "emer_jax.convert", f"--checkpoint={CHECKPOINT}", f"--output={output}"],
    cwd=REPO,
  )
  while proc.poll() is None and not any(tmp_path.glob(".converted.converting-*")):
    time.sleep(0.01)  # killed while the new conversion is being written
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL  # killed mid-conversion, not after it finished
  after = {p.relative_to(output): p.read_bytes() for p in output.rglob("*") if p.is_file()}
  assert after == before
  assert model_metadata(str(output / "model"))
  _run("emer_jax.convert", f"--checkpoint={CHECKPOINT}", f"--output={output}")
  assert (output / "notes.txt").read_text() == "mine" and not list(tmp_path.glob(".converted.*"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """(seconds, folder) of an uninterrupted conversion."""
  output = tmp_path_factory.mktemp("reference") / "converted"
  seconds, _ = faults.timed(_convert(output))
  return seconds, output


def _convert(output):
  return faults.command("emer_jax.convert", f"--checkpoint={CHECKPOINT}", f"--output={output}")


def _arrays(model_dir) -> dict:
  """{key path: array} of an Orbax checkpoint: its contents, not its files' names or times."""
  import jax
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as checkpointer:
    tree = checkpointer.restore(model_dir)
  out = {}
  for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
      value = jax.random.key_data(value)
    out[jax.tree_util.keystr(path)] = np.asarray(value)
  return out


@pytest.mark.skipif(not CHECKPOINT.exists(), reason=f"reference fixtures not at {CHECKPOINT}")
@pytest.mark.many_seeds
@pytest.mark.parametrize("seed", range(4))
def test_a_conversion_killed_at_a_seeded_moment_then_rerun_equals_an_uninterrupted_one(
  converted, tmp_path, seed
):
  seconds, reference = converted
  output = tmp_path / "converted"
  faults.stop(_convert(output), seed=seed, within=seconds)
  faults.finish(_convert(output))
  assert (output / "config.json").read_bytes() == (reference / "config.json").read_bytes()
  got, want = _arrays(output / "model"), _arrays(reference / "model")
  assert sorted(got) == sorted(want)
  for path, value in want.items():
    np.testing.assert_array_equal(got[path], value, err_msg=path)
  assert not list(tmp_path.glob(".converted.*"))
