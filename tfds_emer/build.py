"""Builds the TFDS dataset `emer`, or `emer_study/<name>` of a study, without the `tfds` CLI.

  python -m tfds_emer.build --config=real --manual_dir=DIR --data_dir=DIR \\
      [--file_format=array_record|tfrecord] [--workers=N]
  python -m tfds_emer.build --study=STUDY --data_dir=DIR [--face_frames=32] [--workers=N]

tfrecord (for `tfds.load`, tf.data) needs the `[tf]` extra; array_record does not. The `real`
config reads each eye export and face clip once, in `--workers` processes (default: every core).

Builds into one data_dir take turns: a build waits while another process builds the same
dataset there (lock file `<data_dir>/emer/<config>/<version>.lock`), then finds it built and
reuses it. The temporary `incomplete.*` folders a killed build leaves are removed by the next.
"""

import contextlib
import datetime
import os
import pathlib
import shlex
import shutil
import sys
import time

import tensorflow_datasets as tfds
from absl import flags, logging

import tfds_emer  # noqa: F401 - registers `emer` and `emer_study`
from tfds_emer import locks, logs
from tfds_emer.release import ReleaseError
from tfds_emer.study import layout
from tfds_emer.study.builder import FACE_FRAMES, EmerStudy, StudyConfig, fingerprint, study_config
from tfds_emer.study.check import validate_study

_INFO = "dataset_info.json"  # TFDS writes it last, into its temporary folder


class DatasetDamaged(RuntimeError):
  """A dataset folder cannot be read; the message holds the command that rebuilds it."""


def build_command(builder) -> str:
  """The shell command that builds `builder`'s dataset (RELEASE stands for the release)."""
  data_dir = shlex.quote(os.path.abspath(builder.data_dir_root))
  if isinstance(builder.builder_config, StudyConfig):
    study = shlex.quote(str(builder.builder_config.study.root))
    return f"python -m tfds_emer.build --study={study} --data_dir={data_dir}"
  real = getattr(builder.builder_config, "sim", None) is None
  args = [f"--config={builder.builder_config.name}"] + (["--manual_dir=RELEASE"] if real else [])
  args.append(f"--data_dir={shlex.quote(os.path.abspath(builder.data_dir_root))}")
  folder = builder.data_dir
  if os.path.isdir(folder) and any(".tfrecord" in name for name in os.listdir(folder)):
    args.append("--file_format=tfrecord")
  note = "   (RELEASE: the unpacked EMER release)" if real else ""
  return f"python -m tfds_emer.build {' '.join(args)}{note}"


def rebuild_command(builder) -> str:
  """The shell command that moves `builder`'s dataset folder aside and builds it again."""
  folder = os.path.abspath(builder.data_dir)
  aside = f"{folder}.broken-{datetime.datetime.now():%Y%m%d-%H%M%S}"
  return f"mv {shlex.quote(folder)} {shlex.quote(aside)} && {build_command(builder)}"


def is_built(builder) -> bool:
  """Whether `builder`'s dataset is built; raises DatasetDamaged for a half-present folder."""
  folder = builder.data_path
  if not folder.exists():
    return False
  if not (folder / _INFO).exists():
    raise DatasetDamaged(
      f"{folder} holds no {_INFO}: the dataset {builder.info.full_name} was not built there "
      f"(or was damaged). Move it aside and build it again:\n  {rebuild_command(builder)}"
    )
  return True


@contextlib.contextmanager
def _turn(path: str, what: str):
  """Holds the lock `path`, waiting while another process holds it."""
  with contextlib.ExitStack() as stack:
    said = False
    while True:
      try:
        stack.enter_context(locks.exclusive(path, what))
        break
      except locks.LockHeld as e:
        if not said:
          logging.warning("%s Waiting until it is done.", e)
          said = True
        time.sleep(1.0)
    yield


def _remove_unfinished(builder) -> None:
  """Removes the `incomplete.*` folders TFDS leaves when a build is killed (no user data)."""
  stale = sorted(builder.data_path.parent.glob(f"incomplete.*_{builder.version}"))
  for folder in stale:
    shutil.rmtree(folder)
  if stale:
    logging.warning(
      "Removed %d unfinished build folder(s) of %s left by a build that was stopped (TFDS "
      "temporary folders, nothing else): %s",
      len(stale),
      builder.info.full_name,
      ", ".join(str(f) for f in stale),
    )


def prepare(builder, manual_dir=None, file_format="array_record"):
  """Builds `builder`'s dataset unless it is built; returns a builder that reads it.

  Waits while another process builds it into the same data_dir, and then uses that build.
  """
  if not is_built(builder):
    _build_once(builder, manual_dir, file_format)
  return type(builder)(
    data_dir=builder.data_dir_root, config=builder.builder_config, version=str(builder.version)
  )


def _build_once(builder, manual_dir, file_format) -> None:
  lock = str(builder.data_path.parent / f"{builder.version}.lock")
  with _turn(lock, f"dataset {builder.info.full_name} in {builder.data_dir_root}"):
    if is_built(builder):  # built by the process we waited for
      logging.info("%s was built by another process; using it.", builder.info.full_name)
    else:
      _remove_unfinished(builder)
      builder.download_and_prepare(
        file_format=file_format,
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
      )


def build(config: str, data_dir=None, manual_dir=None, file_format="array_record", workers=None):
  builder = tfds.builder(
    f"emer/{config}", data_dir=data_dir, file_format=file_format, workers=workers
  )
  return prepare(builder, manual_dir, file_format)


def build_study(
  study, data_dir=None, face_frames=FACE_FRAMES, file_format="array_record", workers=None
):
  """Builds `emer_study/<name>` of the study folder `study` unless it is built from the study as
  it is now; checks the whole study first, so a defect stops it before anything is written."""
  report = validate_study(study, deep=False)
  if not report.ok:  # a defect of the layout, labels or folds: files are not read
    raise layout.StudyError(report.problems)
  builder = EmerStudy(config=study_config(report.study, face_frames), data_dir=data_dir)
  if is_built(builder):
    made = tfds.builder_from_directory(builder.data_path).info.metadata.get("fingerprint")
    if made != fingerprint(report.study, face_frames):
      raise layout.StudyError(
        [
          f"{builder.data_path} was built from {study} as it was before (labels.csv, "
          "study.json, its files or --face_frames changed since). Move it aside and build "
          "again:\n  " + rebuild_command(builder)
        ]
      )
    return prepare(builder, None, file_format)
  report = validate_study(study, deep=True, progress=True, workers=workers)
  for warning in report.warnings:
    logging.warning(warning)
  if not report.ok:
    raise layout.StudyError(report.problems)
  builder = EmerStudy(
    config=study_config(report.study, face_frames),
    data_dir=data_dir,
    file_format=file_format,
    workers=workers,
    formats=report.formats,
  )
  return prepare(builder, None, file_format)


def written(builder) -> str:
  """The 'wrote' line of a built dataset: where, how many samples, how big."""
  folder = pathlib.Path(builder.data_dir)
  size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
  n = builder.info.splits["train"].num_examples
  return f"wrote {folder} ({builder.info.full_name}: {n} samples, {size / 1e6:.0f} MB)"


def main(argv):
  del argv
  f = flags.FLAGS
  try:
    if f.study is not None:
      builder = build_study(f.study, f.data_dir, f.face_frames, f.file_format, f.workers)
    else:
      builder = build(f.config, f.data_dir, f.manual_dir, f.file_format, f.workers)
  except (DatasetDamaged, ReleaseError, layout.StudyError) as e:
    sys.exit(f"{type(e).__name__}: {e}")
  print(written(builder))


if __name__ == "__main__":
  flags.DEFINE_enum("config", "synthetic", ["synthetic", "synthetic_small", "real"], "Config.")
  flags.DEFINE_string("manual_dir", None, "The unpacked release (config real).")
  flags.DEFINE_string("study", None, "A study folder: builds emer_study/<name> (not --config).")
  flags.DEFINE_integer("face_frames", FACE_FRAMES, "Face frames sampled per recording (--study).")
  flags.DEFINE_string("data_dir", None, "Where TFDS datasets live (TFDS default if unset).")
  flags.DEFINE_enum("file_format", "array_record", ["array_record", "tfrecord"], "Storage format.")
  flags.DEFINE_integer("workers", None, "Processes decoding release samples (default: all cores).")
  logs.run(main)
