"""TFDS datasets `emer` (eye-behaviour-aided multimodal emotion recognition, EMER-Sim) and
`emer_study/<name>` (a study of your own)."""

from tfds_emer.emer import Emer
from tfds_emer.study.builder import EmerStudy

__all__ = ["Emer", "EmerStudy"]
