"""TFDS dataset `emer` (eye-behaviour-aided multimodal emotion recognition) and EMER-Sim."""

from tfds_emer.emer import Emer

__all__ = ["Emer"]
