"""TFDS builder `emer_study`: one config per study folder, made from the study when it is built.

`python -m tfds_emer.build --study=STUDY --data_dir=D` builds `D/emer_study/<name>/1.0.0`; it is
read back without the study (and without TensorFlow) by
`tfds.data_source("emer_study/<name>", data_dir=D, split="train")` after `import tfds_emer`:
TFDS finds no code config of that name and reads the dataset's own `dataset_info.json` and
`features.json`, which hold the label classes. What a trainer needs is in `info.metadata`
(`METADATA`).
"""

import dataclasses
import hashlib
import sys

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tqdm import tqdm

from tfds_emer import parallel
from tfds_emer.stats import RunningStats, non_finite
from tfds_emer.study import layout, recording
from tfds_emer.trackers import schema
from tfds_emer.vocabulary import FACE_SIZE, MAP_SIZE

FACE_FRAMES = 32  # as emer/real
EYE_COLUMNS = schema.COLUMNS
# info.metadata keys: labels [{name, kind, classes}], eye_columns, gaze_columns, eye_mean/std,
# gaze_mean/std (over every row of the dataset), formats {id: format}, units {id: units},
# subjects (subject_id → name), folds ("given" or "subject-grouped"), screen_px, face_frames,
# study (the folder it was built from) and fingerprint (of its files).
METADATA = (
  "labels",
  "eye_columns",
  "gaze_columns",
  "eye_mean",
  "eye_std",
  "gaze_mean",
  "gaze_std",
  "formats",
  "units",
  "subjects",
  "folds",
  "screen_px",
  "face_frames",
  "study",
  "fingerprint",
)


def fingerprint(study: layout.Study, face_frames: int) -> str:
  """A hash of labels.csv, study.json, the names and sizes of the recordings' files and the
  number of face frames sampled."""
  h = hashlib.sha256(f"face_frames={face_frames};".encode())
  for name in (layout.LABEL_FILE, layout.SETTINGS_FILE):
    path = study.root / name
    h.update(path.read_bytes() if path.exists() else b"-")
  for entry in study.entries:
    for path in (entry.eye, entry.video, entry.frames):
      if path is None:
        continue
      files = sorted(path.rglob("*")) if path.is_dir() else [path]
      for f in files:
        h.update(f"{f.relative_to(study.root)}:{f.stat().st_size};".encode())
  return h.hexdigest()[:16]


@dataclasses.dataclass(eq=False)
class StudyConfig(tfds.core.BuilderConfig):
  study: layout.Study | None = dataclasses.field(default=None, repr=False)
  face_frames: int = FACE_FRAMES


def features(study: layout.Study, face_frames: int) -> tfds.features.FeaturesDict:
  scalar = tfds.features.Scalar
  return tfds.features.FeaturesDict(
    {
      "face": tfds.features.Tensor(
        shape=(face_frames, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8, encoding="zlib"
      ),
      "eye": tfds.features.Tensor(
        shape=(None, len(EYE_COLUMNS)), dtype=np.float32, encoding="zlib"
      ),
      "gaze": tfds.features.Tensor(shape=(None, 2), dtype=np.float32, encoding="zlib"),
      "fixation_map": tfds.features.Tensor(
        shape=(MAP_SIZE, MAP_SIZE, 1), dtype=np.float32, encoding="zlib"
      ),
      "sample_id": tfds.features.Text(),
      "subject_id": scalar(np.int32),
      "fold": scalar(np.int32),
      **{
        lab.name: tfds.features.ClassLabel(names=lab.classes)
        if lab.is_class
        else scalar(np.float32)
        for lab in study.labels
      },
    }
  )


def study_config(study: layout.Study, face_frames: int = FACE_FRAMES) -> StudyConfig:
  return StudyConfig(
    name=study.name,
    description=f"The study at {study.root}.",
    study=study,
    face_frames=face_frames,
  )


class EmerStudy(tfds.core.GeneratorBasedBuilder):
  """A study of your own: face video, eye-tracker data and fixation maps with your labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = []  # one per study, made by `study_config` when it is built

  def __init__(self, *, workers: int | None = None, formats: dict | None = None, **kwargs):
    """`workers`: processes that decode recordings; `formats`: {id: format} found by validate."""
    super().__init__(**kwargs)
    self._workers = workers
    self._formats = dict(formats or {})

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    if cfg is None or cfg.study is None:
      raise layout.StudyError(
        ["emer_study is built from a study: python -m tfds_emer.build --study=STUDY --data_dir=D"]
      )
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=features(cfg.study, cfg.face_frames),
      metadata=tfds.core.MetadataDict(),
    )

  def _log_download_bytes(self):
    print(f"building {self.info.full_name} in {self.data_dir}", file=sys.stderr, flush=True)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    cfg = self.builder_config
    study = cfg.study
    jobs = [(entry, study, cfg.face_frames) for entry in study.entries]
    workers = self._workers or parallel.default_workers(len(jobs))
    decoded = parallel.ordered_map(decode_recording, jobs, workers)
    bar = tqdm(decoded, total=len(jobs), desc=f"building {self.info.full_name}", unit="recording")
    eye_stats, gaze_stats = RunningStats(len(EYE_COLUMNS)), RunningStats(2)
    problems, units = [], {}
    for rid, example, found, warnings, unit in bar:
      for warning in warnings:
        logging.warning(warning)
      if example is not None:
        found = found + [
          p for p in [non_finite(example["eye"], EYE_COLUMNS, f"recording {rid}: eye")] if p
        ]
      problems += found
      if problems:
        continue
      units[rid] = unit
      eye_stats.add(example["eye"])
      gaze_stats.add(example["gaze"])
      yield rid, example
    if problems:
      raise layout.StudyError(problems)  # TFDS then removes its temporary folder
    meta = self.info.metadata
    meta["labels"] = [
      {
        "name": lab.name,
        "kind": "class" if lab.is_class else "regression",
        "classes": list(lab.classes),
      }
      for lab in study.labels
    ]
    meta["eye_columns"] = list(EYE_COLUMNS)
    meta["gaze_columns"] = ["gaze_x", "gaze_y"]
    meta["eye_mean"], meta["eye_std"] = eye_stats.mean_std()
    meta["gaze_mean"], meta["gaze_std"] = gaze_stats.mean_std()
    meta["formats"] = self._formats
    meta["units"] = units
    meta["subjects"] = list(study.subjects)
    meta["folds"] = "given" if study.folds_given else "subject-grouped"
    meta["screen_px"] = study.settings.get("screen_px")
    meta["face_frames"] = cfg.face_frames
    meta["study"] = str(study.root.resolve())
    meta["fingerprint"] = fingerprint(study, cfg.face_frames)


def decode_recording(job):
  """(id, example or None, problems, warnings, eye units) of one recording; runs in a worker."""
  entry, study, face_frames = job
  warnings = []
  try:
    example, units = recording.make_example(entry, study, face_frames, warnings)
  except schema.RecordingError as e:
    return entry.id, None, [f"recording {entry.id}: {e}"], warnings, {}
  except layout.StudyError as e:
    return entry.id, None, [f"recording {entry.id}: {p}" for p in e.problems], warnings, {}
  return entry.id, example, [], warnings, units
