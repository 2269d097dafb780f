import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from emer_jax.train import optim


def _config(**kw):
  return ml_collections.ConfigDict(dict(learning_rate=1e-2, weight_decay=0.1, warmup_steps=0) | kw)


def test_weight_decay_is_coupled_l2_like_pytorch_adam():
  """PyTorch Adam(weight_decay): g ← g + wd·p, then Adam on g (differs from AdamW)."""
  cfg = _config()
  tx = optim.make_optimizer(cfg, total_steps=100)
  p = jnp.array([1.0, -2.0, 3.0])
  g = jnp.array([0.1, 0.2, -0.3])
  state = tx.init(p)
  updates, _ = tx.update(g, state, p)
  g_eff = g + 0.1 * p
  m = 0.1 * g_eff / (1 - 0.9)
  v = 0.001 * g_eff**2 / (1 - 0.999)
  expected = -1e-2 * m / (jnp.sqrt(v) + 1e-8)
  np.testing.assert_allclose(updates, expected, rtol=1e-5)
  adamw = optax.adamw(1e-2, weight_decay=0.1)
  other, _ = adamw.update(g, adamw.init(p), p)
  assert not np.allclose(other, updates)


def test_cosine_schedule_with_warmup():
  sched = optim.learning_rate_schedule(_config(warmup_steps=10), total_steps=110)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(sched(10), 1e-2, rtol=1e-6)
  np.testing.assert_allclose(sched(60), 0.5e-2, rtol=1e-5)
  np.testing.assert_allclose(sched(110), 0.0, atol=1e-9)


def test_grl_schedules():
  const = ml_collections.ConfigDict(dict(schedule="constant", value=0.5))
  assert float(optim.grl_lambda(const, 7, 100)) == 0.5
  dann = ml_collections.ConfigDict(dict(schedule="dann", value=1.0))
  assert float(optim.grl_lambda(dann, 0, 100)) == 0.0
  np.testing.assert_allclose(optim.grl_lambda(dann, 100, 100), 2 / (1 + np.exp(-10)) - 1)
  mid = float(optim.grl_lambda(dann, 50, 100))
  assert 0.9 < mid < 1.0
