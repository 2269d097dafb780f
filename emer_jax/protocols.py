"""The prediction targets and the benchmark protocols, in one place.

EMER's targets and its seven protocols come from its vocabulary (`tfds_emer.vocabulary`).
PROTOCOLS.md reconstructs the protocol set from the label inventory and the authors' evaluation
code; the paper bodies are not at hand. Correct this table, and only this table, when they are.

Any other dataset, e.g. a study built as `emer_study/<name>`, brings its own labels: the
protocol `study:<label>[,<label>…]` predicts them, and `emer_jax.dataset_targets` reads them
from the dataset's features into the config (`config.labels`). `use_labels` makes a config's
labels known to this process, so that `TARGETS` names every target in use.
"""

import dataclasses

# The class names and label fields belong to the dataset; re-exported here for emer_jax.
from tfds_emer.vocabulary import EMOTIONS, LABEL_FIELDS, POLARITIES

__all__ = ["EMOTIONS", "POLARITIES", "PROTOCOLS", "TARGETS", "Protocol", "Target"]

STUDY = "study:"  # the prefix of a protocol naming a dataset's own labels


@dataclasses.dataclass(frozen=True)
class Target:
  """One label of a sample and how a head predicts it."""

  name: str  # the dataset feature, e.g. 'er_emotion'
  kind: str  # 'classification' or 'regression'
  class_names: tuple[str, ...] = ()

  @property
  def num_outputs(self) -> int:
    return len(self.class_names) if self.kind == "classification" else 1

  def to_label(self) -> dict:
    """As `config.labels` records it: {'kind', 'classes'}."""
    return {"kind": self.kind, "classes": tuple(self.class_names)}


EMER_TARGETS = {
  f.name: Target(f.name, "classification", f.classes)
  if f.is_class
  else Target(f.name, "regression")
  for f in LABEL_FIELDS
}
# Every target this process knows: EMER's, then the labels of the configs in use (`use_labels`).
TARGETS = dict(EMER_TARGETS)


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


def is_study(name: str) -> bool:
  return isinstance(name, str) and name.startswith(STUDY)


def study_labels(name: str) -> tuple[str, ...]:
  """The labels `study:a,b` names, in order, e.g. ('a', 'b'); () for any other name."""
  if not is_study(name):
    return ()
  labels = tuple(s.strip() for s in name.removeprefix(STUDY).split(","))
  return labels if all(labels) and len(set(labels)) == len(labels) else ()


def get_protocol(name: str) -> Protocol:
  if study_labels(name):
    return Protocol(name, study_labels(name))
  if name not in PROTOCOLS:
    raise KeyError(
      f"Unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)} or "
      f"'{STUDY}<label>[,<label>…]' with a dataset's labels."
    )
  return PROTOCOLS[name]


def use_labels(labels) -> None:
  """Makes a config's `labels` ({name: {'kind', 'classes'}}) known as targets in this process."""
  for name, label in dict(labels or {}).items():
    kind, classes = label["kind"], tuple(label.get("classes") or ())
    TARGETS[name] = Target(name, kind, classes if kind == "classification" else ())


def head_sizes(target_names) -> dict[str, int]:
  """Output size of the head for each target, e.g. {'er_emotion': 7, 'er_valence': 1}."""
  unknown = [n for n in target_names if n not in TARGETS]
  if unknown:
    raise KeyError(f"Unknown target(s) {unknown}; expected names from {sorted(TARGETS)}.")
  return {n: TARGETS[n].num_outputs for n in target_names}
