"""The reference optimiser (Adam with coupled L2 weight decay, cosine annealing) and GRL schedules."""

import jax.numpy as jnp
import optax


def learning_rate_schedule(config, total_steps: int) -> optax.Schedule:
  decay_steps = max(total_steps - config.warmup_steps, 1)
  cosine = optax.cosine_decay_schedule(config.learning_rate, decay_steps)
  if not config.warmup_steps:
    return cosine
  warmup = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
  return optax.join_schedules([warmup, cosine], [config.warmup_steps])


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """PyTorch `Adam(weight_decay=wd)`: wd·param is added to the gradient before Adam (not AdamW)."""
  return optax.chain(
    optax.add_decayed_weights(config.weight_decay),
    optax.scale_by_adam(),
    optax.scale_by_learning_rate(learning_rate_schedule(config, total_steps)),
  )


def grl_lambda(config, step, total_steps: int):
  """Gradient-reversal strength at `step`: constant, or the DANN ramp 2/(1+exp(-10p)) - 1."""
  if config.schedule == "constant":
    return jnp.float32(config.value)
  if config.schedule == "dann":
    progress = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
    return jnp.float32(config.value * (2.0 / (1.0 + jnp.exp(-10.0 * progress)) - 1.0))
  raise ValueError(f"Unknown grl.schedule {config.schedule!r}; expected 'constant' or 'dann'.")
