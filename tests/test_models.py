"""Model contract: output shapes, the gradient reversal layer, input checks, dtype, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emer_jax import models
from emer_jax.models.layers import reverse_gradient
from tests.model_testing import forward, tiny_config, tiny_inputs

EYE_ONLY = tiny_config(modalities=("eye", "gaze"))  # compiles quickly


def test_reference_sizes_and_parameter_count():
  model = nnx.eval_shape(
    lambda: models.build_model(models.get_config(), heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  )
  # The reference state dict's parameters minus ResNet's fc and the unused classifier.
  assert sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param))) == 12_249_850


def test_gradient_reversal_forward_identity_backward_scaled():
  x = jnp.arange(6.0).reshape(2, 3)
  np.testing.assert_array_equal(reverse_gradient(x, 0.7), x)
  w = jnp.array([1.0, -2.0, 3.0])

  def f(x, lam):
    return jnp.sum(jnp.sin(reverse_gradient(x, lam)) * w)

  for lam in (0.0, 0.3, 1.0, 2.5):
    np.testing.assert_allclose(jax.grad(f)(x, lam), -lam * jnp.cos(x) * w, rtol=1e-6)
  # Numerical check: the forward is the identity, so finite differences see +g, the VJP −λ·g.
  eps = 1e-3
  fd = (f(x.at[0, 1].add(eps), 1.0) - f(x.at[0, 1].add(-eps), 1.0)) / (2 * eps)
  np.testing.assert_allclose(jax.grad(f)(x, 1.0)[0, 1], -fd, rtol=1e-2)


def test_grl_lambda_is_traced_not_recompiled():
  model = models.build_model(EYE_ONLY, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  traces = []

  @nnx.jit
  def step(model, inputs, lam):
    traces.append(1)
    return model(inputs, grl_lambda=lam)["heads"]["er_emotion"]

  inputs = tiny_inputs()
  for lam in (0.0, 0.5, 1.0):
    step(model, inputs, jnp.float32(lam))
  assert len(traces) == 1


def test_discriminator_gradient_reverses_into_invariant_projection():
  model = models.build_model(EYE_ONLY, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  inputs = tiny_inputs()

  @nnx.jit
  def grads(model, lam):
    def loss(model):
      return model(inputs, grl_lambda=lam)["invariant_logits"].sum()

    return nnx.grad(loss)(model).invariant_projection.layers[0].kernel[...]

  g_pos, g_neg = grads(model, 2.0), grads(model, -1.0)
  assert np.abs(g_pos).max() > 0
  np.testing.assert_allclose(g_pos, -2.0 * g_neg, rtol=1e-5, atol=1e-7)


def test_bad_inputs_name_the_stream():
  model = models.build_model(EYE_ONLY, heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  inputs = tiny_inputs()
  with pytest.raises(KeyError, match="gaze"):
    model({k: v for k, v in inputs.items() if k != "gaze"})
  with pytest.raises(ValueError, match="'eye'.*expected"):
    model(inputs | {"eye": inputs["eye"][:, :, :5]})
  with pytest.raises(ValueError, match="Unknown model variant"):
    models.get_config("nope")


def test_bfloat16_computation_keeps_float32_params():
  model = models.build_model(
    tiny_config(), heads={"er_emotion": 7}, rngs=nnx.Rngs(0), dtype=jnp.bfloat16
  )
  out = forward(model, tiny_inputs())
  assert out["heads"]["er_emotion"].dtype == jnp.bfloat16
  assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}


def test_sharding_annotations():
  model = models.build_model(tiny_config(), heads={"er_emotion": 7}, rngs=nnx.Rngs(0))
  specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))
  face = specs["encoders"]["encoders"]["face"]
  assert face["backbone"]["conv1"]["kernel"].get_value() == jax.P(None, None, None, "model")
  assert specs["transformer"]["layers"][0]["attention"]["to_q"]["kernel"].get_value() == jax.P(
    None, "model"
  )
  lstm = specs["encoders"]["encoders"]["eye"]["lstm"]["layers"][0]
  assert lstm["hidden_kernel"].get_value() == jax.P(None, None)


def test_train_mode_dropout_uses_rng_eval_is_deterministic():
  model = models.build_model(EYE_ONLY, heads={"er_emotion": 7}, rngs=nnx.Rngs(0, dropout=1))
  inputs = tiny_inputs()
  model.train()
  train_a = forward(model, inputs)["heads"]["er_emotion"]
  train_b = forward(model, inputs)["heads"]["er_emotion"]
  assert not np.allclose(train_a, train_b)
  model.eval()
  eval_a = forward(model, inputs)["heads"]["er_emotion"]
  np.testing.assert_array_equal(forward(model, inputs)["heads"]["er_emotion"], eval_a)


def test_summary_counts_parameters_per_module():
  from emer_jax.models.summary import summarize

  text = summarize(models.get_config("reference"), {"er_emotion": 7})
  assert "encoders/face" in text and "heads/er_emotion" in text
  assert text.splitlines()[-1].split() == ["total", "12,249,850"]
