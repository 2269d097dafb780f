"""Jit-compiled train and eval steps over the split (graphdef, state) of
{'model': …, 'optimizer': …} (`state.init_state`)."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from emer_jax.models.layers import Dropout
from emer_jax.models.modality_dropout import ModalityDropout
from emer_jax.train.losses import total_loss

MODEL_INPUTS = ("face", "eye", "gaze", "fixation_map")


def model_inputs(batch: dict, dtype) -> dict:
  """Batch fields the network reads; face frames go from uint8 to [0, 1]."""
  inputs = {k: batch[k].astype(dtype) for k in MODEL_INPUTS if k in batch}
  inputs["face"] = inputs["face"] / jnp.asarray(255, dtype)
  return inputs


def make_train_step(graphdef, *, dtype, alpha: float, beta: float, head_weights: dict):
  """Returns step(state, batch, grl_lambda, hyper=None) -> (state, metrics).

  `hyper` (`multi_run.run_hyper`, traced) replaces `alpha`, `beta`, `head_weights` and the
  dropout rates above 0, and its `weight_decay`·param is added to the gradients (the
  optimiser's own weight decay must then be 0: `optim.make_injected_optimizer`).

  A step whose loss or gradients are not finite leaves the state unchanged and reports
  `finite/loss` or `finite/grads` = False, so the caller can stop with the last good state.
  Under a mesh, the new state keeps the layout its partitioning annotations give (the layout
  `state.init_state` creates): left to GSPMD, some variables would come back sharded
  differently and the next call would compile again.
  """

  def step(state, batch, grl_lambda, hyper=None):
    train = nnx.merge(graphdef, state)
    model, optimizer = train["model"], train["optimizer"]
    model.train()
    weights = (alpha, beta, head_weights)
    if hyper is not None:
      weights = (hyper["alpha"], hyper["beta"], hyper["head_weights"])
      for _, module in nnx.iter_modules(model):
        if isinstance(module, ModalityDropout):
          module.rate = hyper["modality_dropout"]
        elif isinstance(module, Dropout) and module.rate:  # at 0 it draws nothing
          module.rate = hyper["dropout"][module.key]

    def loss_fn(model):
      outputs = model(model_inputs(batch, dtype), grl_lambda=grl_lambda)
      a, b, heads = weights
      return total_loss(outputs, batch, alpha=a, beta=b, head_weights=heads)

    (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    grad_norm = optax.tree.norm(grads)
    if hyper is not None:
      decay = hyper["weight_decay"]
      grads = jax.tree.map(lambda g, p: g + decay * p, grads, nnx.state(model, nnx.Param))
    optimizer.update(model, grads)
    metrics["grad_norm"] = grad_norm
    metrics["finite/loss"] = jnp.isfinite(loss)
    metrics["finite/grads"] = jnp.isfinite(grad_norm)
    finite = metrics["finite/loss"] & metrics["finite/grads"]
    new_state = nnx.state({"model": model, "optimizer": optimizer})
    new_state = jax.lax.cond(finite, lambda: new_state, lambda: state)
    mesh = jax.sharding.get_abstract_mesh()
    if set(mesh.axis_names) - set(mesh.manual_axes):  # axes left to GSPMD (not in shard_map)
      new_state = jax.lax.with_sharding_constraint(new_state, nnx.get_partition_spec(new_state))
    return new_state, metrics

  return jax.jit(step, donate_argnums=0)


def make_eval_step(graphdef, *, dtype):
  """Returns step(state, batch) -> {target: float32 outputs (B, C)}, in eval mode."""

  def step(state, batch):
    model = nnx.merge(graphdef, state)["model"]
    model.eval()
    outputs = model(model_inputs(batch, dtype), grl_lambda=jnp.float32(0.0))
    return {k: v.astype(jnp.float32) for k, v in outputs["heads"].items()}

  return jax.jit(step)
