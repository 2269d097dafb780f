"""TFDS builder for EMER (eye-behaviour-aided multimodal emotion recognition, Liu et al.).

Not "Explainable Multimodal Emotion Reasoning", an unrelated dataset with the same acronym.
Configs: `synthetic` (EMER-Sim at paper scale, the default), `synthetic_small` (EMER-Sim,
190 samples) and `real` (the licence-gated release, a manual download).
"""

import dataclasses
import sys

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tqdm import tqdm

from tfds_emer import eye_export, face_media, parallel, release
from tfds_emer.example import make_example
from tfds_emer.release import ReleaseError
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim
from tfds_emer.stats import RunningStats, non_finite
from tfds_emer.vocabulary import FACE_SIZE, GAZE_WIDTH, LABEL_FIELDS, MAP_SIZE, STIMULI

_CITATION = """\
@article{liu2024smile,
  title={Smile upon the Face but Sadness in the Eyes: Emotion Recognition based on Facial
         Expressions and Eye Behaviors},
  author={Liu, Yuanyuan and Wei, Lin and Liu, Kejun and Zhan, Yibing and Chen, Zijing and
          Chen, Zhe and Shan, Shiguang},
  journal={arXiv preprint arXiv:2411.05879},
  year={2024}
}"""


@dataclasses.dataclass(eq=False)
class EmerConfig(tfds.core.BuilderConfig):
  face_frames: int = 32
  sim: SimConfig | None = None  # None: read the real release from manual_dir


def features(face_frames: int) -> tfds.features.FeaturesDict:
  scalar = tfds.features.Scalar
  return tfds.features.FeaturesDict(
    {
      "face": tfds.features.Tensor(
        shape=(face_frames, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8, encoding="zlib"
      ),
      "eye": tfds.features.Tensor(
        shape=(None, eye_export.NUM_COLUMNS), dtype=np.float32, encoding="zlib"
      ),
      "gaze": tfds.features.Tensor(shape=(None, GAZE_WIDTH), dtype=np.float32, encoding="zlib"),
      "fixation_map": tfds.features.Tensor(
        shape=(MAP_SIZE, MAP_SIZE, 1), dtype=np.float32, encoding="zlib"
      ),
      **{
        f.name: tfds.features.ClassLabel(names=f.classes) if f.is_class else scalar(np.float32)
        for f in LABEL_FIELDS
      },
      "subject_id": scalar(np.int32),
      "sample_id": tfds.features.Text(),
      "stimulus": tfds.features.ClassLabel(names=STIMULI),
      "fold": scalar(np.int32),
    }
  )


class Emer(tfds.core.GeneratorBasedBuilder):
  """EMER: face video, eye movements and fixation maps, labelled with ER and FER."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
    EmerConfig(
      name="synthetic",
      description="EMER-Sim at paper scale: 1,303 samples of 121 subjects. Says nothing about real EMER.",
      face_frames=16,
      sim=SimConfig(),
    ),
    EmerConfig(
      name="synthetic_small",
      description="EMER-Sim, 190 samples of 19 subjects, for tests and quick runs.",
      face_frames=16,
      sim=SimConfig(seed=1, num_subjects=19, num_samples=190),
    ),
    EmerConfig(
      name="real",
      description="The EMER release (licence-gated), read from manual_dir.",
      face_frames=32,
    ),
  ]
  DEFAULT_CONFIG_NAME = "synthetic"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  EMER (eye-behaviour-aided multimodal emotion recognition) is licence-gated: request it from
  its authors under their academic EULA, then unpack the release into manual_dir so that it
  holds `EMER_label.xlsx`, `emer_set.txt`, `eye_movement data/` and `face_light_align image/`
  (or `face video/`). See tfds_emer/README.md for accepted forms and the optional mapping file.
  """

  def __init__(self, *, workers: int | None = None, **kwargs):
    """`workers`: processes that decode release samples (default: every core)."""
    super().__init__(**kwargs)
    self._workers = workers

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=features(self.builder_config.face_frames),
      homepage="https://arxiv.org/abs/2411.05879",
      citation=_CITATION,
      metadata=tfds.core.MetadataDict(),
    )

  def _log_download_bytes(self):  # tfds: 'Downloading and preparing dataset Unknown size …'
    print(f"building {self.info.full_name} in {self.data_dir}", file=sys.stderr, flush=True)

  def _log_download_done(self):
    logging.info("Built %s in %s.", self.info.full_name, self.data_dir)

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.sim is not None:
      return {"train": self._generate_examples(self._sim_examples(cfg), eye_export.COLUMNS)}
    # Imported here: `import tfds_emer` must not import the module `python -m` runs as __main__.
    from tfds_emer.validate import validate

    # Labels, folds and files first; each export and clip is then read once, while building.
    report = validate(dl_manager.manual_dir, cfg.face_frames, deep=False)
    for warning in report.warnings:
      logging.warning(warning)
    if not report.ok:
      raise ReleaseError(report.problems)
    return {
      "train": self._generate_examples(self._release_examples(cfg, report), eye_export.COLUMNS)
    }

  def _generate_examples(self, examples, eye_columns):
    eye_stats, gaze_stats = RunningStats(eye_export.NUM_COLUMNS), RunningStats(2)
    for key, example in examples:
      problem = non_finite(example["eye"], eye_columns, f"sample {key}: eye")
      if problem:
        raise ReleaseError([problem])
      eye_stats.add(example["eye"])
      gaze_stats.add(example["gaze"])
      yield key, example
    # Reached only once every example is written, before DatasetInfo is saved.
    meta = self.info.metadata
    meta["eye_mean"], meta["eye_std"] = eye_stats.mean_std()
    meta["gaze_mean"], meta["gaze_std"] = gaze_stats.mean_std()
    meta["eye_columns"] = list(eye_columns)

  def _release_examples(self, cfg: EmerConfig, report):
    """Decodes samples in worker processes, in order; every defect is collected, then raised
    before the dataset is finalised (TFDS then removes its temporary folder)."""
    screen = tuple(report.mapping.get("screen_px", eye_export.SCREEN_PX))
    jobs = [(files, report.mapping, cfg.face_frames, screen) for files in report.samples.values()]
    workers = self._workers or parallel.default_workers(len(jobs))
    decoded = parallel.ordered_map(decode_release_sample, jobs, workers)
    problems = []
    bar = tqdm(decoded, total=len(jobs), desc=f"building {self.info.full_name}", unit="sample")
    for sid, example, found, warnings in bar:
      problems += found
      for warning in warnings:
        logging.warning(warning)
      if not problems:
        yield sid, example
    if problems:
      raise ReleaseError(problems)

  def _sim_examples(self, cfg: EmerConfig):
    sim = EmerSim(cfg.sim)
    gaze_cols = tuple(eye_export.COLUMNS.index(c) for c in eye_export.GAZE_COLUMNS)
    for lab in sim.samples:
      raw = sim.sample(lab.index, cfg.face_frames)
      yield (
        lab.sample_id,
        make_example(
          frames=raw.frames,
          eye_raw=raw.eye,
          gaze_cols=gaze_cols,
          timestamps_ms=raw.eye[:, 0],
          labels=label_features(lab),
          num_frames=cfg.face_frames,
          screen=cfg.sim.screen_px,
        ),
      )


def decode_release_sample(job) -> tuple[str, dict | None, list[str], list[str]]:
  """(ID, example or None, problems, warnings) of one release sample; runs in a worker process."""
  files, mapping, face_frames, screen = job
  sid = files.label.sample_id
  warnings = []
  try:
    export = release.read_eye(files.eye, mapping)
  except ReleaseError as e:
    return sid, None, e.problems, warnings
  try:
    frames = face_media.read_faces(
      files.frame_dir,
      files.video,
      face_frames,
      FACE_SIZE,
      warnings=warnings,
      aligned_video=mapping.get("face_video") == "aligned",
    )
  except ReleaseError as e:
    return sid, None, [f"sample {sid}: {p}" for p in e.problems], warnings
  example = make_example(
    frames=frames,
    eye_raw=export.values,
    gaze_cols=export.gaze_cols,
    timestamps_ms=export.timestamps_ms,
    labels=label_features(files.label),
    num_frames=face_frames,
    screen=screen,
  )
  return sid, example, [], warnings


def label_features(lab) -> dict:
  """Label features of a sample from an object with the label attributes."""
  return {
    **{
      f.name: getattr(lab, f.name) if f.is_class else np.float32(getattr(lab, f.name))
      for f in LABEL_FIELDS
    },
    "subject_id": np.int32(lab.subject_id),
    "sample_id": lab.sample_id,
    "stimulus": lab.stimulus,
    "fold": np.int32(lab.fold),
  }
