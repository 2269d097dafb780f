"""Every variant, baseline and ablation trains a few steps on the 8-device CPU mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from emer_jax import models
from emer_jax.train.losses import total_loss
from tests.model_testing import tiny_config, tiny_inputs

EMOTION = {"er_emotion": 7}
CASES = {
  "reference": (tiny_config("reference"), EMOTION),
  "model_D": (tiny_config("model_D"), {"er_valence": 1, "er_arousal": 1}),
  "intensity": (tiny_config("intensity"), {"fer_emotion": 7, "fer_intensity": 1}),
  "emert": (tiny_config("emert"), {"er_emotion": 7, "fer_emotion": 7}),
  "no_face_no_discriminator": (
    tiny_config("emert", modalities=("eye", "gaze"), use_discriminator=False),
    EMOTION,
  ),
  "no_eye": (tiny_config("emert", modalities=("face", "fixation_map")), EMOTION),
  "no_third_stream": (tiny_config("emert", modalities=("face", "eye")), EMOTION),
} | {name: (tiny_config(name), EMOTION) for name in models.config.BASELINE_VARIANTS}
CASES["mult"][0].modalities = ("face", "eye")  # two crossmodal transformers keep it quick
STEPS = 3
# These tests check that training runs, not its speed: cheap XLA compilation halves their time.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def labels_for(heads, batch, rng):
  return {
    name: jnp.asarray(rng.integers(0, size, batch) if size > 1 else rng.normal(size=batch))
    for name, size in heads.items()
  }


def train(model, inputs, labels):
  """STEPS Adam steps with a ramped GRL lambda, compiled once; returns the losses."""
  graphdef, state = nnx.split((model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)))

  @jax.jit(compiler_options=FAST_COMPILE)
  def run(state):
    def step(i, carry):
      state, losses = carry
      model, optimizer = nnx.merge(graphdef, state)

      def loss_fn(model):
        outputs = model(inputs, grl_lambda=i / STEPS)
        return total_loss(outputs, labels, alpha=0.01, beta=0.01, head_weights={})[0]

      loss, grads = nnx.value_and_grad(loss_fn)(model)
      optimizer.update(model, grads)
      return nnx.state((model, optimizer)), losses.at[i].set(loss)

    return jax.lax.fori_loop(0, STEPS, step, (state, jnp.zeros(STEPS)))

  state, losses = run(state)
  nnx.update(model, state[0])
  return np.asarray(losses)


@pytest.mark.parametrize("case", sorted(CASES))
def test_trains_a_few_steps(case):
  config, heads = CASES[case]
  mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  data = jax.sharding.NamedSharding(mesh, jax.P("data"))
  with jax.set_mesh(mesh):
    model = models.build_model(config, heads=heads, rngs=nnx.Rngs(0))
    if "face" in config.modalities and hasattr(model, "encoders"):
      kernel = model.encoders.encoders["face"].backbone.conv1.kernel[...]
      assert kernel.sharding.spec == jax.P(None, None, None, "model")
    inputs = jax.device_put(tiny_inputs(batch=8, eye_features=config.num_eye_features), data)
    labels = jax.device_put(labels_for(heads, 8, np.random.default_rng(0)), data)
    shapes = jax.eval_shape(lambda: model(inputs))
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    model.train()
    losses = train(model, inputs, labels)
  assert {k: v.shape for k, v in shapes["heads"].items()} == {k: (8, c) for k, c in heads.items()}
  if config.use_discriminator:
    m = len(config.modalities)
    assert shapes["invariant_logits"].shape == shapes["specific_logits"].shape == (m, 8, m)
  else:
    assert set(shapes) == {"heads"}
  assert np.all(np.isfinite(losses)), losses
  after = nnx.state(model, nnx.Param)
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after)
  assert all(jax.tree.leaves(changed)), "some parameters did not change"
