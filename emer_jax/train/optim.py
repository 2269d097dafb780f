"""The reference optimiser (Adam with coupled L2 weight decay, cosine annealing) and GRL schedules."""

import jax.numpy as jnp
import optax


def learning_rate(config, step, total_steps, peak=None):
  """The learning rate at `step` of `total_steps` (either may be traced): a linear warmup over
  `warmup_steps` to `peak` (`config.learning_rate` unless given, maybe traced), then cosine
  annealing to 0 at `total_steps`."""
  peak = config.learning_rate if peak is None else peak
  step = jnp.asarray(step, jnp.float32)
  warmup = config.warmup_steps
  decay_steps = jnp.maximum(jnp.asarray(total_steps, jnp.float32) - warmup, 1.0)
  progress = jnp.minimum(jnp.maximum(step - warmup, 0.0), decay_steps) / decay_steps
  cosine = peak * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  if not warmup:
    return cosine
  return jnp.where(step < warmup, peak * step / warmup, cosine)


def learning_rate_schedule(config, total_steps: int) -> optax.Schedule:
  return lambda count: learning_rate(config, count, total_steps)


def _reference_adam(learning_rate, weight_decay):
  """PyTorch `Adam(weight_decay=wd)`: wd·param is added to the gradient before Adam (not AdamW)."""
  return optax.chain(
    optax.add_decayed_weights(weight_decay),
    optax.scale_by_adam(),
    optax.scale_by_learning_rate(learning_rate),
  )


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  return _reference_adam(learning_rate_schedule(config, total_steps), config.weight_decay)


def make_injected_optimizer(config) -> optax.GradientTransformation:
  """The reference optimiser with its learning rate held in its state (`hyperparams`), for the
  caller to set before each update, and no weight decay of its own: the caller adds
  weight_decay·param to the gradients (`steps.make_train_step`'s `hyper`), the same sum
  `optax.add_decayed_weights` forms. Runs of different lengths, learning rates and weight decays
  can then share one program."""
  return optax.inject_hyperparams(_reference_adam, static_args=("weight_decay",))(
    learning_rate=config.learning_rate, weight_decay=0.0
  )


def grl_lambda(config, step, total_steps, value=None):
  """Gradient-reversal strength at `step`: constant, or the DANN ramp 2/(1+exp(-10p)) - 1, of
  `value` (`config.value` unless given, maybe traced)."""
  value = config.value if value is None else value
  if config.schedule == "constant":
    return jnp.asarray(value, jnp.float32)
  if config.schedule == "dann":
    progress = jnp.clip(step / jnp.maximum(total_steps, 1), 0.0, 1.0)
    return jnp.asarray(value * (2.0 / (1.0 + jnp.exp(-10.0 * progress)) - 1.0), jnp.float32)
  raise ValueError(f"Unknown grl.schedule {config.schedule!r}; expected 'constant' or 'dann'.")
