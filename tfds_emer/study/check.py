"""Checks a study folder and reports what `python -m tfds_emer.build --study=STUDY` would build.

  python -m tfds_emer.validate --study=STUDY [--shallow] [--workers=N]

Per recording: eye format, rows, rate, duration, share of rows with a gaze point, fixations,
faces found (on `recording.FACE_SAMPLE` frames of a raw video) and the face clip's duration.
Then labels, folds, warnings and defects, each naming its file or recording, and one closing
line, `OK: …` or `FAILED: …`. The build runs the same checks first and stops on a defect.
"""

import collections
import dataclasses

from tqdm import tqdm

from tfds_emer import parallel, report_text
from tfds_emer.study import layout, recording
from tfds_emer.trackers.schema import RecordingError


@dataclasses.dataclass
class Row:
  """What validate read of one recording."""

  id: str
  format: str = "?"
  rows: int = 0
  rate_hz: float = 0.0
  eye_s: float = 0.0
  valid: float = 0.0
  fixations: int | None = None
  faces: str = "?"
  video_s: float = 0.0


@dataclasses.dataclass
class StudyReport:
  study: layout.Study
  rows: list = dataclasses.field(default_factory=list)
  problems: list = dataclasses.field(default_factory=list)
  warnings: list = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    return not self.problems

  @property
  def formats(self) -> dict:
    return {row.id: row.format for row in self.rows}

  def information(self) -> list[str]:
    study = self.study
    entries = study.entries
    if not study.name:
      return ["recordings: 0"]
    info = [
      f"name: {study.name} (dataset emer_study/{study.name})",
      f"recordings: {len(entries)}, subjects: {len({e.subject for e in entries})}",
    ]
    for lab in study.labels:
      if lab.is_class:
        counts = collections.Counter(lab.classes[e.labels[lab.name]] for e in entries)
        info.append(
          f"label {lab.name} (classes): " + ", ".join(f"{c} {counts[c]}" for c in lab.classes)
        )
      else:
        values = [e.labels[lab.name] for e in entries] or [0.0]
        info.append(f"label {lab.name} (regression): [{min(values):g}, {max(values):g}]")
    how = "from labels.csv" if study.folds_given else "subject-grouped, made by the build"
    folds = collections.defaultdict(list)
    for e in entries:
      folds[e.fold].append(e.subject)
    info.append(
      f"folds ({how}): "
      + "; ".join(
        f"{k}: {report_text.count(len(v), 'recording')}, {report_text.count(len(set(v)), 'subject')}"
        for k, v in sorted(folds.items())
      )
    )
    formats = collections.Counter(row.format for row in self.rows)
    if formats:
      info.append("eye formats: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())))
    return info

  def table(self) -> list[str]:
    head = (
      "id",
      "format",
      "rows",
      "rate",
      "duration",
      "valid",
      "fixations",
      "faces",
      "video",
      "eye-video",
    )
    lines = [head]
    for r in self.rows:
      lines.append(
        (
          r.id,
          r.format,
          str(r.rows),
          f"{r.rate_hz:.0f} Hz",
          f"{r.eye_s:.1f} s",
          f"{100 * r.valid:.0f}%",
          "-" if r.fixations is None else str(r.fixations),
          r.faces,
          f"{r.video_s:.1f} s",
          f"{r.eye_s - r.video_s:+.1f} s",
        )
      )
    widths = [max(len(line[j]) for line in lines) for j in range(len(head))]
    return [
      "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]

  def text(self) -> str:
    table = [(f"recordings ({len(self.rows)}):", self.table() if self.rows else [])]
    title = f"study at {self.study.root}"
    return report_text.text(
      title, self.information(), table, self.warnings, self.problems, self.summary()
    )

  def summary(self) -> str:
    total, readable = len(self.study.entries), len(self.rows)
    return report_text.summary(self.ok, total, readable, "recording", self.warnings, self.problems)


def check_recording(entry: layout.Entry, study: layout.Study, problems: list, warnings: list):
  """The report's row of one recording, or None with its defects added to `problems`."""
  row = Row(entry.id)
  try:
    rec = recording.read_eye(entry, study)
  except RecordingError as e:
    problems.append(f"recording {entry.id}: {e}")
    rec = None
  try:
    clip = recording.probe_clip(entry, study)
  except layout.StudyError as e:
    problems.extend(f"recording {entry.id}: {p}" for p in e.problems)
    clip = None
  if rec is None or clip is None:
    return None
  row.format, row.rows, row.rate_hz = rec.format, rec.rows, rec.rate_hz
  row.eye_s, row.valid, row.fixations = (
    rec.duration_ms / 1000,
    rec.valid_share,
    recording.fixations(rec),
  )
  row.faces, row.video_s = clip.faces, clip.duration_s
  for note in rec.notes:
    warnings.append(f"recording {entry.id}: {entry.eye.name}: {note}")
  if rec.valid_share == 0:
    warnings.append(f"recording {entry.id}: {entry.eye}: no row has a gaze point.")
  if not clip.faces_ok:
    problems.append(
      f"recording {entry.id}: {entry.video}: a face in {clip.faces} sampled frames; at least "
      f"half are needed (a roughly frontal face, a tenth of the frame wide or more), or say "
      f'"face_video": "aligned" in study.json if the video holds aligned faces.'
    )
    return None
  if recording.duration_gap(row.eye_s, row.video_s):
    warnings.append(
      f"recording {entry.id}: eye data last {row.eye_s:.1f} s, the face clip {row.video_s:.1f} s; "
      f"the example keeps the first {min(row.eye_s, row.video_s):.1f} s of both."
    )
  return row


def check_job(job) -> tuple:
  """(row or None, problems, warnings) of one (entry, study); runs in a worker process."""
  entry, study = job
  problems, warnings = [], []
  return check_recording(entry, study, problems, warnings), problems, warnings


def validate_study(
  root, deep: bool = True, progress: bool = False, workers: int | None = None
) -> StudyReport:
  """Checks the layout, labels and folds; `deep` also reads every eye file and probes each clip,
  in `workers` processes (default: every core, at least 8 recordings a worker)."""
  problems, warnings = [], []
  study = layout.read_study(root, problems, warnings)
  report = StudyReport(study, problems=problems, warnings=warnings)
  if not deep:
    return report
  jobs = [(entry, study) for entry in study.entries]
  workers = workers or parallel.default_workers(len(jobs))
  checked = parallel.ordered_map(check_job, jobs, workers)
  bar = tqdm(
    checked, total=len(jobs), desc="validating study", unit="recording", disable=not progress
  )
  for row, found, noted in bar:
    problems += found
    warnings += noted
    if row is not None:
      report.rows.append(row)
  return report
