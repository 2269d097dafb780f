"""Names and layouts of parameters in the authors' PyTorch EMERT and in torchvision ResNet-18.

`torch_name(path)` gives, for a variable path of the Flax model, the PyTorch state-dict key and
how the arrays differ in layout; loading and exporting both use it, so they cannot disagree.
"""

import numpy as np

# Keys present in reference state dicts that the Flax model has no use for.
IGNORED_PREFIXES = ("subnet.f_extractor.fc.", "subnet.classifier.", "fc.")
IGNORED_SUFFIXES = (".num_batches_tracked",)

_NORM = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_DENSE = {"kernel": "weight", "bias": "bias"}
_LSTM = {
  "input_kernel": "weight_ih",
  "hidden_kernel": "weight_hh",
  "input_bias": "bias_ih",
  "hidden_bias": "bias_hh",
}
_BLOCK = {
  "conv1": "conv1",
  "bn1": "bn1",
  "conv2": "conv2",
  "bn2": "bn2",
  "downsample_conv": "downsample.0",
  "downsample_bn": "downsample.1",
}
# Authors' names of the per-modality specific projections (MISA-style v / a / l slots).
SPECIFIC_PROJECTIONS = {"face": "v", "eye": "a", "gaze": "l"}
LSTMS = {"eye": "e_lstm", "gaze": "v_lstm"}


def is_ignored(key: str) -> bool:
  return key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIXES)


def _param(module: str, leaf: str):
  """(key, layout) of a Linear/Conv/Norm leaf."""
  if leaf in _DENSE:
    return f"{module}.{_DENSE[leaf]}", "dense" if leaf == "kernel" else "same"
  return f"{module}.{_NORM[leaf]}", "same"


def resnet_name(path: tuple) -> tuple[str, str]:
  """torchvision ResNet key of a path inside the Flax `ResNet`."""
  match path:
    case (("conv1" | "bn1") as module, leaf):
      key, _ = _param(module, leaf)
      return key, "conv" if module == "conv1" else "same"
    case ("stages", stage, block, module, leaf):
      key, _ = _param(f"layer{stage + 1}.{block}.{_BLOCK[module]}", leaf)
      return key, "conv" if "conv" in module else "same"
  raise KeyError(path)


def _sequential(prefix, layers_path):
  """Linear i of a LeakyMlp ↔ index 2i of a PyTorch Sequential(Linear, LeakyReLU, …)."""
  (_, i, leaf) = layers_path
  return _param(f"{prefix}.{2 * i}", leaf)


def emert_name(path: tuple) -> tuple[str, str]:
  """Reference state-dict key of a path inside the Flax `EMERT` (reference layout)."""
  match path:
    case ("encoders", "encoders", "face", "backbone", *rest):
      key, layout = resnet_name(tuple(rest))
      return f"subnet.f_extractor.{key}", layout
    case ("encoders", "encoders", "face", "projection", leaf):
      return _param("proj_v1", leaf)
    case ("encoders", "encoders", ("eye" | "gaze") as m, "lstm", "layers", k, leaf):
      layout = "dense" if "kernel" in leaf else "same"
      return f"subnet.{LSTMS[m]}.{_LSTM[leaf]}_l{k}", layout
    case ("invariant_projection", *rest):
      return _sequential("invariant_projection", tuple(rest))
    case ("specific_projections", m, *rest) if m in SPECIFIC_PROJECTIONS:
      return _sequential(f"specific_projection_{SPECIFIC_PROJECTIONS[m]}", tuple(rest))
    case ("discriminator", leaf):
      return _param("distriminator.0", leaf)
    case ("transformer", "pos_target"):
      return "transformer.pos_embedding_t", "same"
    case ("transformer", "pos_source"):
      return "transformer.pos_embedding_s", "same"
    case ("transformer", "layers", i, "attention", module, leaf):
      prefix = f"transformer.CrossTransformerEncoder.layers.{i}.0"
      if module.startswith("norm"):
        return _param(f"{prefix}.{module}", leaf)
      return _param(f"{prefix}.fn.{module}{'.0' if module == 'to_out' else ''}", leaf)
    case ("transformer", "layers", i, "feed_forward", module, leaf):
      prefix = f"transformer.CrossTransformerEncoder.layers.{i}.1"
      sub = {"norm": "norm", "fc1": "fn.net.0", "fc2": "fn.net.3"}[module]
      return _param(f"{prefix}.{sub}", leaf)
    case ("heads", "heads", _name, *rest):
      return _sequential("cls_head", tuple(rest))
  raise KeyError(path)


def to_flax(array: np.ndarray, layout: str) -> np.ndarray:
  if layout == "dense":
    return array.T
  if layout == "conv":  # (out, in, kh, kw) → (kh, kw, in, out)
    return array.transpose(2, 3, 1, 0)
  return array


def to_torch(array: np.ndarray, layout: str) -> np.ndarray:
  if layout == "dense":
    return array.T
  if layout == "conv":
    return array.transpose(3, 2, 0, 1)
  return array
