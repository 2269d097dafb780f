"""The comparison suite: protocols × models, one table. `python -m emer_jax.suite
--config=configs/suite.py[:small|:check]`.

  (no arg)  all seven protocols × every model below (EMERT, ablations, baselines), reference
            settings, five folds (a GPU job).
  small     ER-7 and FER-7 × EMERT, face-only and eye-only on EMER-Sim small, fold 1,
            `protocol_config(..., 'small')` for 15 epochs: 7.5 minutes on an idle 2-core CPU
            (docs/protocols.md).
  check     the EMER-Sim check of DATASET.md: the same cells on EMER-Sim (1,303 samples), fold 1,
            10 epochs (docs/protocols.md).
  robustness  ER-7 cells of `check` × EMERT, EMERT with modality dropout and face-only, each
            tested under every corruption (emer_jax.evaluation.robustness; docs/protocols.md).
"""

import ml_collections

from emer_jax.models.config import BASELINE_VARIANTS
from emer_jax.protocols import PROTOCOLS


def _models() -> ml_collections.ConfigDict:
  """Every model the suite knows: EMERT variants, ablations (modalities, discriminator) and the
  baselines of `emer_jax.models.baselines`."""
  # The EMERT rows build on the `reference` variant, but read clocks relative to each recording's
  # start like every model trained here: absolute clocks could leak stimulus order (the
  # `eye_clocks_only` row tests whether they do).
  relative = {"eye_clocks": "relative"}
  return ml_collections.ConfigDict(
    {
      **{name: {"arg": f"variant={name}"} for name in BASELINE_VARIANTS},
      "emert": {"overrides": {"model": relative}},
      "emert_multitask": {"arg": "multitask", "overrides": {"model": relative}},
      "emert_fixation": {"arg": "variant=emert"},
      "no_discriminator": {"overrides": {"model": {"use_discriminator": False, **relative}}},
      "face_only": {
        "overrides": {"model": {"modalities": ("face",), "use_discriminator": False, **relative}}
      },
      "eye_only": {"overrides": {"model": {"modalities": ("eye", "gaze"), **relative}}},
      # Trained with each stream dropped per sample with probability 0.3 (never all).
      "emert_modality_dropout": {"overrides": {"model": {"modality_dropout": 0.3, **relative}}},
    }
  )


def get_config(arg=""):
  c = ml_collections.ConfigDict()
  c.workdir = "runs/suite"
  c.protocols = tuple(PROTOCOLS)
  c.protocol_arg = ""
  c.models = _models()
  c.model_names = (
    "emert",
    "emert_multitask",
    "emert_fixation",
    "no_discriminator",
    "face_only",
    "eye_only",
    *BASELINE_VARIANTS,
  )
  c.overrides = ml_collections.ConfigDict()
  c.metrics = {"classification": ("war", "uar", "f1_weighted"), "regression": ("mae", "ccc")}
  # `robustness=True`: each cell is also tested under corruptions (emer_jax.evaluation.robustness)
  # and `robustness.{md,csv,tex}` compares the models under each corruption and severity.
  c.robustness = False
  c.robustness_corruptions = ()  # corruption names; () = all
  c.robustness_metrics = {"classification": ("war",), "regression": ("mae",)}
  if arg in ("small", "check", "robustness"):
    c.workdir = f"runs/suite_{arg}"
    c.protocols = ("er7", "fer7")
    c.model_names = ("emert", "face_only", "eye_only")
    c.protocol_arg = "small"
    c.overrides = {"folds": (1,), "num_epochs": 15}
    if arg in ("check", "robustness"):
      c.overrides.dataset = "emer/synthetic"
      c.overrides.num_epochs = 10
      # Accuracy where the face masks the genuine emotion (ER ≠ FER) and where it does not.
      c.metrics.classification = ("war", "uar", "war_masked", "war_unmasked")
    if arg == "robustness":
      c.protocols = ("er7",)
      c.model_names = ("emert", "emert_modality_dropout", "face_only")
      c.robustness = True
      c.robustness_metrics.classification = ("war", "war_masked")
  elif arg:
    raise ValueError(f"Unknown suite {arg!r}; expected '', 'small', 'check' or 'robustness'.")
  return c
