"""Checks an EMER release in `manual_dir` and reports what the `real` build would read.

  python -m tfds_emer.validate --manual_dir=DIR [--face_frames=32] [--shallow]
  python -m tfds_emer.validate --study=STUDY [--shallow] [--workers=N]   (study/check.py)

The report has three parts: information (what the release holds), warnings (read, but worth a
look: kept as given or left out) and defects (the build would stop). Every warning and defect
names the file or sample it concerns and what was expected. It ends with one summary line,
`OK: …` or `FAILED: …`; the command exits with status 1 only if there is a defect. The `real`
builder runs the same checks first.
"""

import collections
import dataclasses
import pathlib
import sys

import numpy as np
from absl import flags
from tqdm import tqdm

from tfds_emer import eye_export, face_media, logs, release, report_text
from tfds_emer import release_layout as layout
from tfds_emer.vocabulary import EMOTIONS


@dataclasses.dataclass(frozen=True)
class SampleFiles:
  label: release.Label  # with its fold
  eye: pathlib.Path
  frame_dir: pathlib.Path | None
  video: pathlib.Path | None


@dataclasses.dataclass
class Report:
  manual_dir: pathlib.Path
  mapping: dict = dataclasses.field(default_factory=dict)
  samples: dict = dataclasses.field(default_factory=dict)  # ID -> SampleFiles
  problems: list = dataclasses.field(default_factory=list)
  warnings: list = dataclasses.field(default_factory=list)
  faces: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  dropped_columns: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  eye_columns: tuple = ()
  eye_rows: list = dataclasses.field(default_factory=list)
  invalid_share: list = dataclasses.field(default_factory=list)
  eye_rules: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  sheet_order: list = dataclasses.field(default_factory=list)  # a line per sheet-order export

  @property
  def ok(self) -> bool:
    return not self.problems

  def information(self) -> list[str]:
    """What the readable part of the release holds."""
    labels = [s.label for s in self.samples.values()]
    if not labels:
      return ["samples: 0"]
    info = [f"samples: {len(labels)}", f"subjects: {len({lab.subject_id for lab in labels})}"]
    info.append(
      f"faces: aligned frames for {self.faces['aligned frames']} samples, face video for "
      f"{self.faces['face video']} (aligned frames are used where there are both)"
    )
    if self.dropped_columns:
      cols = ", ".join(f"{k!r} ({v} files)" for k, v in sorted(self.dropped_columns.items()))
      info.append(f"text eye columns, left out: {cols}")
    if self.eye_rules:
      info.append(f"eye exports: {self.rules()}")
      info += self.sheet_order
    if self.eye_rows:
      info.append(
        f"eye rows per sample: min {min(self.eye_rows)}, median {int(np.median(self.eye_rows))}, "
        f"max {max(self.eye_rows)}; invalid gaze rows: {100 * np.mean(self.invalid_share):.1f}%"
      )
    for view in ("er", "fer"):
      counts = collections.Counter(EMOTIONS[getattr(lab, f"{view}_emotion")] for lab in labels)
      info.append(f"{view.upper()} 7-class: " + ", ".join(f"{e} {counts[e]}" for e in EMOTIONS))
      for dim in ("valence", "arousal") + (("intensity",) if view == "fer" else ()):
        vals = [getattr(lab, f"{view}_{dim}") for lab in labels]
        info.append(f"{view.upper()} {dim}: [{min(vals):g}, {max(vals):g}]")
    folds = collections.defaultdict(list)
    for lab in labels:
      folds[lab.fold].append(lab.subject_id)
    for fold in sorted(folds):
      info.append(f"set{fold}: {len(folds[fold])} samples, {len(set(folds[fold]))} subjects")
    subject_folds = collections.defaultdict(set)
    for lab in labels:
      subject_folds[lab.subject_id].add(lab.fold)
    spread = sum(len(f) > 1 for f in subject_folds.values())
    note = " (the release's folds do not separate subjects; config.fold_scheme='subject' does)"
    info.append(
      f"subjects in more than one fold: {spread} of {len(subject_folds)}{note if spread else ''}"
    )
    return info

  def rules(self) -> str:
    """How many eye exports each rule read, e.g. '48 by header name, 2 in sheet order (…)'."""
    return ", ".join(
      f"{self.eye_rules[r]} {text}" for r, text in eye_export.RULES.items() if self.eye_rules[r]
    )

  def text(self) -> str:
    title = f"EMER release at {self.manual_dir}"
    return report_text.text(
      title, self.information(), [], self.warnings, self.problems, self.summary()
    )

  def summary(self) -> str:
    n = len(self.samples)
    return report_text.summary(self.ok, n, n, "sample", self.warnings, self.problems)


def validate(manual_dir, face_frames: int = 32, deep: bool = True, progress=False) -> Report:
  """Checks labels, folds and files; `deep` also reads every eye export and face clip."""
  root = pathlib.Path(manual_dir)
  report = Report(root)
  if not root.is_dir():
    report.problems.append(f"{root}: manual_dir does not exist or is not a folder.")
    return report
  try:
    report.mapping = release.load_mapping(root)
  except release.ReleaseError as e:
    report.problems.extend(e.problems)
    return report
  before = len(report.problems)
  labels = release.read_labels(root, report.mapping, report.problems, report.warnings)
  sheet_read = bool(labels) or len(report.problems) == before  # else no ID can be cross-checked
  folds = release.read_folds(root, report.mapping, report.problems)
  set_file = root / layout.SET_FILE
  for sid in sorted(set(folds) - set(labels)) if sheet_read else ():
    report.problems.append(
      f"{set_file}: sample {sid} has a fold but no row in {layout.LABEL_FILE} (missing label row)."
    )
  eye_dir = root / layout.EYE_DIR
  if not eye_dir.is_dir():
    report.problems.append(f"{eye_dir}: missing; expected one eye export per sample.")
  items = sorted(labels.items())
  for sid, lab in tqdm(items, desc="Validating EMER release", disable=not progress):
    if sid not in folds:
      if folds:
        report.problems.append(f"{set_file}: sample {sid} is labelled but in no fold.")
      continue
    lab = dataclasses.replace(lab, fold=folds[sid])
    ok = True
    eye = release.find_file(eye_dir, sid, layout.EYE_SUFFIXES, report.problems)
    if eye is None:
      if eye_dir.is_dir():
        report.problems.append(
          f"{eye_dir}: no eye export for sample {sid}; expected {sid}.xlsx, .tsv or .csv."
        )
      ok = False
    elif deep:
      try:
        export = release.read_eye(eye, report.mapping)
        report.dropped_columns.update(export.dropped)
        report.eye_rules[export.rule] += 1
        if export.rule == "sheet order":
          _note_sheet_order(report, eye, export)
        first = report.eye_columns or export.columns
        if export.columns != first:
          changed = [c for c in export.columns if c not in first]
          report.problems.append(
            f"{eye}: numeric columns differ from the other exports ({changed} not in {list(first)})."
          )
        report.eye_columns = first
        report.eye_rows.append(len(export.values))
        gaze = export.values[:, list(export.gaze_cols)]
        report.invalid_share.append(float(np.mean(~np.isfinite(gaze).all(axis=1))))
      except release.ReleaseError as e:
        report.problems.extend(e.problems)
        ok = False
    frame_dir = root / layout.FACE_FRAMES_DIR / sid
    frame_dir = frame_dir if frame_dir.is_dir() else None
    video = release.find_file(root / layout.FACE_VIDEO_DIR, sid, layout.VIDEO_SUFFIXES, [])
    report.faces["aligned frames"] += frame_dir is not None
    report.faces["face video"] += video is not None
    if deep or (frame_dir is None and video is None):
      try:
        face_media.read_faces(
          frame_dir,
          video,
          face_frames,
          warnings=report.warnings,
          aligned_video=report.mapping.get("face_video") == "aligned",
        )
      except release.ReleaseError as e:
        report.problems.extend(f"sample {sid}: {p}" for p in e.problems)
        ok = False
    if ok:
      report.samples[sid] = SampleFiles(lab, eye, frame_dir, video)
  if eye_dir.is_dir() and sheet_read:
    for path in sorted(eye_dir.iterdir()):
      if path.stem not in labels:
        report.warnings.append(f"{path}: no label row for this export; ignored.")
  if report.eye_rules["sheet order"] and len(report.eye_rules) > 1:
    report.warnings.append(
      f"eye exports are read by different rules ({report.rules()}): sheet-order reads keep "
      "each cell as the file gives it, name reads convert time columns to one unit each."
    )
  if not labels and not report.problems:
    report.problems.append(f"{root / layout.LABEL_FILE}: no labelled sample.")
  return report


def _note_sheet_order(report: Report, path, export) -> None:
  """An information line on a sheet-order export; a warning per known column out of place."""
  x, y = (export.headers[j] for j in export.gaze_cols)
  report.sheet_order.append(
    f"{path}: in sheet order (the authors' rule): {len(export.headers)} numeric columns, "
    f"{export.headers[0]!r} … {export.headers[-1]!r}; gaze {x!r}, {y!r}"
  )
  for place in export.misplaced():
    report.warnings.append(f"{path}: in sheet order, {place}; kept in sheet order.")


def main(argv):
  del argv
  f = flags.FLAGS
  if (f.manual_dir is None) == (f.study is None):
    sys.exit("validate: give --manual_dir=DIR (the EMER release) or --study=STUDY, not both.")
  if f.study is not None:
    from tfds_emer.study.check import validate_study

    report = validate_study(f.study, not f.shallow, progress=True, workers=f.workers)
  else:
    report = validate(f.manual_dir, f.face_frames, not f.shallow, progress=True)
  print(report.text())
  sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
  # Defined here, not at import: the builder imports this module inside other programs.
  flags.DEFINE_string("manual_dir", None, "The unpacked EMER release.")
  flags.DEFINE_string("study", None, "A study folder (labels.csv, video/ or frames/, eye/).")
  flags.DEFINE_integer(
    "workers", None, "Processes reading a study's recordings (default: all cores)."
  )
  flags.DEFINE_integer("face_frames", 32, "Face frames sampled per sample.")
  flags.DEFINE_bool("shallow", False, "Check labels, folds and file presence only.")
  logs.run(main)
