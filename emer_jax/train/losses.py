"""EMERT's objective: alpha·L_invariant + beta·L_specific + Σ_h weight_h·L_task(h).

Model outputs (see `emer_jax.models`): `heads` maps a target name to its (B, C) outputs;
`invariant_logits` and `specific_logits` are (M, B, M): the modality discriminator's logits for
the time-averaged features of modality m, whose label is m. Models without a discriminator leave
those two keys out and their terms are zero.
"""

from collections.abc import Mapping

import jax.numpy as jnp
import optax

from emer_jax.protocols import TARGETS


def classification_loss(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def regression_loss(predictions, targets):
  """SmoothL1 with beta 1 (PyTorch's default), i.e. Huber with delta 1."""
  return optax.huber_loss(predictions, targets, delta=1.0).mean()


def discriminator_loss(modality_logits):
  """Sum over modalities of the mean cross-entropy against the modality's own index."""
  num_modalities, batch = modality_logits.shape[:2]
  labels = jnp.broadcast_to(jnp.arange(num_modalities)[:, None], (num_modalities, batch))
  ce = optax.softmax_cross_entropy_with_integer_labels(modality_logits, labels)
  return ce.mean(axis=1).sum()


def discriminator_accuracy(modality_logits):
  num_modalities = modality_logits.shape[0]
  predicted = modality_logits.argmax(-1)
  return (predicted == jnp.arange(num_modalities)[:, None]).mean()


def task_loss(name, outputs, labels):
  if TARGETS[name].kind == "classification":
    return classification_loss(outputs, labels)
  return regression_loss(outputs[..., 0], labels)


def total_loss(
  outputs, labels: Mapping, *, alpha: float, beta: float, head_weights: Mapping[str, float]
):
  """Returns (total, metrics) for a batch; `labels` maps target names to (B,) arrays."""
  metrics = {}
  total = 0.0
  for name, out in outputs["heads"].items():
    loss = task_loss(name, out.astype(jnp.float32), labels[name])
    metrics[f"loss/task/{name}"] = loss
    total += head_weights.get(name, 1.0) * loss
  metrics["loss/task"] = total
  for part, weight in (("invariant", alpha), ("specific", beta)):
    logits = outputs.get(f"{part}_logits")
    if logits is not None:
      logits = logits.astype(jnp.float32)
      metrics[f"loss/{part}"] = discriminator_loss(logits)
      metrics[f"discriminator/accuracy_{part}"] = discriminator_accuracy(logits)
      total += weight * metrics[f"loss/{part}"]
  metrics["loss/total"] = total
  return total, metrics
