"""The prediction targets of EMER and the seven benchmark protocols, in one place.

PROTOCOLS.md reconstructs the protocol set from the label inventory and the authors' evaluation
code; the paper bodies are not at hand. Correct this table, and only this table, when they are.
"""

import dataclasses

# The class names and label fields belong to the dataset; re-exported here for emer_jax.
from tfds_emer.vocabulary import EMOTIONS, LABEL_FIELDS, POLARITIES

__all__ = ["EMOTIONS", "POLARITIES", "PROTOCOLS", "TARGETS", "Protocol", "Target"]


@dataclasses.dataclass(frozen=True)
class Target:
  """One label of a sample and how a head predicts it."""

  name: str  # the dataset feature, e.g. 'er_emotion'
  kind: str  # 'classification' or 'regression'
  class_names: tuple[str, ...] = ()

  @property
  def num_outputs(self) -> int:
    return len(self.class_names) if self.kind == "classification" else 1


TARGETS = {
  f.name: Target(f.name, "classification", f.classes)
  if f.is_class
  else Target(f.name, "regression")
  for f in LABEL_FIELDS
}


@dataclasses.dataclass(frozen=True)
class Protocol:
  name: str
  targets: tuple[str, ...]  # evaluated targets
  auxiliary: tuple[str, ...] = ()  # trained alongside, not reported

  @property
  def kind(self) -> str:
    return TARGETS[self.targets[0]].kind


PROTOCOLS = {
  p.name: p
  for p in (
    Protocol("er7", ("er_emotion",)),
    Protocol("er3", ("er_polarity",)),
    Protocol("er_va", ("er_valence", "er_arousal")),
    Protocol("fer7", ("fer_emotion",)),
    Protocol("fer3", ("fer_polarity",)),
    Protocol("fer_va", ("fer_valence", "fer_arousal")),
    Protocol("fer_int", ("fer_intensity",), auxiliary=("fer_emotion",)),
  )
}


def get_protocol(name: str) -> Protocol:
  if name not in PROTOCOLS:
    raise KeyError(f"Unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}.")
  return PROTOCOLS[name]


def head_sizes(target_names) -> dict[str, int]:
  """Output size of the head for each target, e.g. {'er_emotion': 7, 'er_valence': 1}."""
  unknown = [n for n in target_names if n not in TARGETS]
  if unknown:
    raise KeyError(f"Unknown target(s) {unknown}; expected names from {sorted(TARGETS)}.")
  return {n: TARGETS[n].num_outputs for n in target_names}
