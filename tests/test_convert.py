"""Conversion of the authors' checkpoints: parity with the PyTorch reference fixtures."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emer_jax import convert, models
from emer_jax.convert import names
from emer_jax.models.resnet import ResNet
from emer_jax.train.losses import total_loss
from tests.model_testing import tiny_config

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
pytestmark = pytest.mark.skipif(
  not (REFERENCE / "reference_emert_io.npz").exists(),
  reason=f"reference fixtures not found under {REFERENCE}",
)
OUTPUT_KEYS = [
  "act/face_feat",
  "act/eye_feat",
  "act/gaze_feat",
  "act/fused_tokens",
  "out/inv_face_logits",
  "out/inv_eye_logits",
  "out/inv_gaze_logits",
  "out/spec_face_logits",
  "out/spec_eye_logits",
  "out/spec_gaze_logits",
  "out/emotion_logits",
]


@pytest.fixture(scope="module")
def io():
  with np.load(REFERENCE / "reference_emert_io.npz") as archive:
    return dict(archive)


@pytest.fixture(scope="module")
def reference_model():
  model, _ = convert.load_reference_checkpoint(REFERENCE / "reference_emert_weights.pth")
  return model


def test_pth_and_npz_hold_the_same_tensors():
  pth = convert.read_state_dict(REFERENCE / "reference_emert_weights.pth")
  npz = convert.read_state_dict(REFERENCE / "reference_emert_weights.npz")
  assert len(pth) == 204 and pth.keys() == npz.keys()
  for key, value in npz.items():
    assert pth[key].dtype == value.dtype and np.array_equal(pth[key], value), key


@pytest.fixture(scope="module")
def outputs(reference_model, io):
  return convert.reference_forward(reference_model, io["face_nchw"], io["eye"], io["gaze"])


@pytest.mark.parametrize("key", OUTPUT_KEYS)
def test_forward_parity(outputs, io, key):
  np.testing.assert_allclose(outputs[key], io[key], rtol=1e-4, atol=1e-5)


def test_npz_weights_give_the_same_logits(reference_model, io):
  model, _ = convert.load_reference_checkpoint(REFERENCE / "reference_emert_weights.npz")
  a = convert.reference_forward(model, io["face_nchw"], io["eye"], io["gaze"])
  np.testing.assert_allclose(
    a["out/emotion_logits"], io["out/emotion_logits"], rtol=1e-4, atol=1e-5
  )


def test_reference_forward_runs_at_full_float32_precision(monkeypatch, reference_model, io):
  # A GPU's default (TF32) products put the fixtures out of tolerance; see reference_forward.
  from emer_jax.convert import checkpoints

  seen, forward = [], checkpoints._forward

  def recording(*args):
    seen.append(jax.config.jax_default_matmul_precision)
    return forward(*args)

  monkeypatch.setattr(checkpoints, "_forward", recording)
  convert.reference_forward(reference_model, io["face_nchw"], io["eye"], io["gaze"])
  assert seen == ["highest"]


@nnx.jit
def _loss_and_grads(model, inputs, labels):
  def loss_fn(model):
    return total_loss(model(inputs, grl_lambda=1.0), labels, alpha=0.01, beta=0.01, head_weights={})

  return nnx.value_and_grad(loss_fn, has_aux=True)(model)


def test_loss_and_gradient_parity(reference_model, io):
  inputs = {
    "face": jnp.asarray(io["face_nchw"].transpose(0, 1, 3, 4, 2)),
    "eye": io["eye"],
    "gaze": io["gaze"],
  }
  (total, metrics), grads = _loss_and_grads(
    reference_model, inputs, {"er_emotion": jnp.asarray(io["label"], jnp.int32)}
  )
  losses = {
    "loss/total": total,
    "loss/invariant": metrics["loss/invariant"],
    "loss/specific": metrics["loss/specific"],
    "loss/task": metrics["loss/task"],
  }
  for key, value in losses.items():
    np.testing.assert_allclose(value, io[key], rtol=1e-4, atol=1e-5, err_msg=key)
  torch_grads = convert.export_state_dict(grads, names.emert_name)
  grad_keys = [k for k in io if k.startswith("grad/")]
  assert len(grad_keys) == 9
  for key in grad_keys:
    expected = io[key]
    got = torch_grads[key.removeprefix("grad/")]
    np.testing.assert_allclose(
      got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max(), err_msg=key
    )


def test_unknown_and_missing_keys_are_listed(tmp_path):
  state = convert.read_state_dict(REFERENCE / "reference_emert_weights.npz")
  state["extra.weight"] = np.zeros(3, np.float32)
  del state["proj_v1.bias"]
  np.savez(tmp_path / "broken.npz", **state)
  with pytest.raises(ValueError, match=r"missing.*proj_v1\.bias.*unknown.*extra\.weight"):
    convert.load_reference_checkpoint(tmp_path / "broken.npz")


def test_export_round_trips_the_checkpoint(reference_model):
  exported = convert.export_state_dict(reference_model, names.emert_name)
  state = convert.read_state_dict(REFERENCE / "reference_emert_weights.npz")
  assert set(state) - set(exported) == {k for k in state if names.is_ignored(k)}
  for key, value in exported.items():
    np.testing.assert_array_equal(value, state[key], err_msg=key)


def test_converted_checkpoint_restores_to_the_same_logits(tmp_path, io, outputs):
  from emer_jax.convert.__main__ import convert_checkpoint
  from emer_jax.train.checkpoint import restore_model

  convert_checkpoint(REFERENCE / "reference_emert_weights.pth", tmp_path / "out")
  description = json.loads((tmp_path / "out" / "config.json").read_text())
  assert description["variant"] == "reference" and description["heads"] == {"er_emotion": 7}
  config = models.get_config("reference")
  config.update({k: v for k, v in description.items() if k != "heads"})
  fresh = models.build_model(config, heads=description["heads"], rngs=nnx.Rngs(1))
  restore_model(str(tmp_path / "out" / "model"), fresh)
  restored = convert.reference_forward(fresh, io["face_nchw"], io["eye"], io["gaze"])
  np.testing.assert_array_equal(restored["out/emotion_logits"], outputs["out/emotion_logits"])


def test_imagenet_resnet_weights_from_a_user_file(tmp_path):
  config = tiny_config()
  with nnx.use_eager_sharding(False):
    donor = ResNet(config.face_encoder.widths, config.face_encoder.blocks, rngs=nnx.Rngs(7))
  weights = convert.export_state_dict(donor, names.resnet_name)
  weights |= {"fc.weight": np.zeros((1000, 8), np.float32), "fc.bias": np.zeros(1000, np.float32)}
  weights["bn1.num_batches_tracked"] = np.array(5, np.int64)
  np.savez(tmp_path / "resnet18.npz", **weights)
  config.face_encoder.pretrained = str(tmp_path / "resnet18.npz")
  model = models.build_model(config, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  loaded = model.encoders.encoders["face"].backbone
  for a, b in zip(
    jax.tree.leaves(nnx.state(loaded)), jax.tree.leaves(nnx.state(donor)), strict=True
  ):
    np.testing.assert_array_equal(a, b)
  del weights["layer2.0.downsample.1.running_var"]
  np.savez(tmp_path / "broken.npz", **weights)
  config.face_encoder.pretrained = str(tmp_path / "broken.npz")
  with pytest.raises(ValueError, match=r"layer2\.0\.downsample\.1\.running_var"):
    models.build_model(config, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))


def test_torch_reader_refuses_arbitrary_globals(tmp_path):
  import pickle
  import zipfile

  with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
    archive.writestr("evil/data.pkl", pickle.dumps({"x": print}, protocol=2))
  with pytest.raises(ValueError, match=r"evil.pth: .*Refusing to load .*print"):
    convert.load_torch_file(tmp_path / "evil.pth")
  (tmp_path / "legacy.pth").write_bytes(b"\x80\x02}q\x00.")
  with pytest.raises(ValueError, match="not a zip-format"):
    convert.read_state_dict(tmp_path / "legacy.pth")
