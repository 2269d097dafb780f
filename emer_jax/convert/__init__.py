"""Reading the authors' PyTorch checkpoints and ImageNet ResNet-18 weights, without PyTorch."""

from emer_jax.convert.checkpoints import (
  load_reference_checkpoint,
  reference_config,
  reference_forward,
)
from emer_jax.convert.state_dict import (
  export_state_dict,
  load_resnet_weights,
  load_state_dict,
  read_state_dict,
)
from emer_jax.convert.torch_pickle import load_torch_file

__all__ = [
  "export_state_dict",
  "load_reference_checkpoint",
  "load_resnet_weights",
  "load_state_dict",
  "load_torch_file",
  "read_state_dict",
  "reference_config",
  "reference_forward",
]
