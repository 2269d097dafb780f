"""A study folder: its labels, folds, settings and the files of each recording.

  STUDY/labels.csv     id, subject, [fold], one column per label (text: classes; numbers: values)
  STUDY/video/<id>.mp4|.avi|.mov|.mkv   or   STUDY/frames/<id>/ (aligned face frames, in order)
  STUDY/eye/<id>.<ext>   or   STUDY/eye/<id>/   (one recording's export, any supported format)
  STUDY/study.json     optional settings (`SETTINGS`)

`read_study` collects every defect (the build would stop) and warning, each naming its file or
recording, instead of stopping at the first.
"""

import collections
import dataclasses
import fnmatch
import json
import pathlib
import re

import pandas as pd

from tfds_emer.trackers import registry

LABEL_FILE = "labels.csv"
SETTINGS_FILE = "study.json"
VIDEO_DIR, FRAMES_DIR, EYE_DIR = "video", "frames", "eye"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ID, SUBJECT, FOLD = "id", "subject", "fold"
NUM_FOLDS = 5  # subject-grouped folds made when labels.csv has no fold column
# study.json keys: the dataset's name, class order per label, screen size in pixels, formats
# and options per format, whether videos hold aligned faces, the frame rate of frame folders.
SETTINGS = ("name", "classes", "screen_px", "formats", "face_video", "frame_rate")
DEFAULT_FRAME_RATE = 30.0  # frames per second of a frame folder, unless study.json says
# Feature names a label column cannot take.
RESERVED = ("face", "eye", "gaze", "fixation_map", "sample_id", "subject_id", FOLD, SUBJECT)
_LABEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class StudyError(ValueError):
  """The study cannot be built; `problems` lists every defect found."""

  def __init__(self, problems):
    self.problems = list(problems)
    super().__init__("the study cannot be built:\n  " + "\n  ".join(self.problems))


@dataclasses.dataclass(frozen=True)
class Label:
  """One label column: classes (in the dataset's order) or, when `classes` is empty, a value."""

  name: str
  classes: tuple[str, ...] = ()

  @property
  def is_class(self) -> bool:
    return bool(self.classes)


@dataclasses.dataclass(frozen=True)
class Entry:
  """One recording: its labels (class index or value), fold and files."""

  id: str
  subject: str
  fold: int
  labels: dict
  eye: pathlib.Path
  video: pathlib.Path | None = None
  frames: pathlib.Path | None = None


@dataclasses.dataclass
class Study:
  root: pathlib.Path
  name: str = ""
  settings: dict = dataclasses.field(default_factory=dict)
  labels: tuple[Label, ...] = ()
  entries: list = dataclasses.field(default_factory=list)  # Entry, by id
  subjects: tuple[str, ...] = ()  # sorted; subject_id is the index here
  folds_given: bool = False

  def eye_options(self, fmt: str) -> dict:
    """Options for the reader of `fmt`: the screen size, then the format's own options."""
    options = {}
    if "screen_px" in self.settings:
      options["screen_px"] = list(self.settings["screen_px"])
    given = self.settings.get("formats", {}).get(fmt)
    return options | (given if isinstance(given, dict) else {})

  def named_format(self, path: pathlib.Path) -> str | None:
    """The format study.json names for an eye file (pattern → format name), else None."""
    rel = path.relative_to(self.root).as_posix()
    for pattern, fmt in self.settings.get("formats", {}).items():
      if isinstance(fmt, str) and (fnmatch.fnmatch(rel, pattern) or path.name == pattern):
        return fmt
    return None

  @property
  def frame_rate(self) -> float:
    return float(self.settings.get("frame_rate", DEFAULT_FRAME_RATE))

  @property
  def aligned_video(self) -> bool:
    return self.settings.get("face_video") == "aligned"


def config_name(text: str) -> str:
  """`text` as a TFDS config name: ASCII letters, digits, `_`, `-` and `.`; others become `_`."""
  name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.-")
  return name or "study"


def read_settings(root: pathlib.Path, problems: list) -> dict:
  path = root / SETTINGS_FILE
  if not path.exists():
    return {}
  try:
    settings = json.loads(path.read_text(encoding="utf-8-sig"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    problems.append(f"{path}: not valid UTF-8 JSON ({e}).")
    return {}
  if not isinstance(settings, dict):
    problems.append(f"{path}: expected a JSON object with keys {list(SETTINGS)}.")
    return {}
  unknown = sorted(set(settings) - set(SETTINGS))
  if unknown:
    problems.append(f"{path}: unknown key(s) {unknown}; expected some of {list(SETTINGS)}.")
  screen = settings.get("screen_px")
  if screen is not None and not (
    isinstance(screen, list) and len(screen) == 2 and all(_positive(v) for v in screen)
  ):
    problems.append(f"{path}: screen_px {screen!r}; expected [width, height] in pixels.")
  if "frame_rate" in settings and not _positive(settings["frame_rate"]):
    problems.append(f"{path}: frame_rate {settings['frame_rate']!r}; expected frames a second.")
  known = registry.formats()
  for key, value in settings.get("formats", {}).items():
    fmt = value if isinstance(value, str) else key
    if fmt not in known:
      problems.append(f"{path}: formats names {fmt!r}; known formats: {sorted(known)}.")
  for label, order in settings.get("classes", {}).items():
    if not (isinstance(order, list) and order and all(isinstance(c, str) for c in order)):
      problems.append(f"{path}: classes of {label!r}; expected a list of class names.")
  return settings


def _positive(value) -> bool:
  return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _number(text: str):
  try:
    return float(text)
  except ValueError:
    return None


def read_labels(path: pathlib.Path, settings: dict, problems: list):
  """(rows as dicts of text, Labels) of labels.csv; defects go to `problems`."""
  if not path.exists():
    problems.append(f"{path}: missing; expected {ID}, {SUBJECT}, [{FOLD}] and label columns.")
    return [], ()
  try:
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
  except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
    problems.append(f"{path}: unreadable as UTF-8 CSV ({type(e).__name__}: {e}).")
    return [], ()
  table.columns = [str(c).strip() for c in table.columns]
  missing = [c for c in (ID, SUBJECT) if c not in table.columns]
  if missing:
    problems.append(f"{path}: no column(s) {missing}; found {list(table.columns)}.")
    return [], ()
  table = table.apply(lambda col: col.str.strip())
  names = [c for c in table.columns if c not in (ID, SUBJECT, FOLD)]
  if not names:
    problems.append(f"{path}: no label column; expected one or more besides {ID}, {SUBJECT}.")
  labels = []
  for name in names:
    where = f"{path}: label column {name!r}"
    if not _LABEL_NAME.match(name) or name in RESERVED:
      problems.append(
        f"{where}: not usable as a feature name; expected letters, digits and _ starting with a "
        f"letter, and none of {list(RESERVED)}."
      )
      continue
    cells = table[name]
    empty = [i + 2 for i, v in enumerate(cells) if v == ""]
    if empty:
      problems.append(f"{where}: empty on line(s) {empty[:10]}; every recording needs a value.")
      continue
    if all(_number(v) is not None for v in cells):
      labels.append(Label(name))
      continue
    found = sorted(set(cells))
    order = settings.get("classes", {}).get(name)
    if order is not None:
      unknown = [c for c in found if c not in order]
      if unknown:
        problems.append(
          f"{where}: class(es) {unknown} not in the order study.json gives ({list(order)})."
        )
        continue
      found = list(order)
    if len(set(cells)) < 2:
      problems.append(
        f"{where}: a single class {found[0]!r} on every row; a label needs two classes or more "
        "(remove the column, or label it with numbers to make it a regression target)."
      )
      continue
    labels.append(Label(name, tuple(found)))
  for name in settings.get("classes", {}):
    if name not in names:
      problems.append(f"{path.parent / SETTINGS_FILE}: classes of {name!r}, not a label column.")
  return table.to_dict("records"), tuple(labels)


def find_one(folder: pathlib.Path, rid: str, suffixes, problems: list, dirs: bool = False):
  """The file `<folder>/<id>.<suffix>` (or folder `<folder>/<id>/` when `dirs`); None if absent."""
  if not folder.is_dir():
    return None
  hits = [folder / f"{rid}{s}" for s in suffixes if (folder / f"{rid}{s}").is_file()]
  if dirs and (folder / rid).is_dir():
    hits.append(folder / rid)
  if len(hits) > 1:
    problems.append(f"{folder}: several files for recording {rid}: {[h.name for h in hits]}.")
  return hits[0] if hits else None


def eye_candidates(folder: pathlib.Path, rid: str) -> list:
  if not folder.is_dir():
    return []
  return sorted(p for p in folder.iterdir() if p.name == rid or (p.is_file() and p.stem == rid))


def subject_folds(counts: dict, num_folds: int = NUM_FOLDS) -> dict:
  """{subject: fold 1..k}: subjects, most recordings first (then by name), each to the fold with
  fewest recordings so far (lowest fold on ties); k is `num_folds` or the number of subjects."""
  k = max(1, min(num_folds, len(counts)))
  load = [0] * k
  folds = {}
  for subject in sorted(counts, key=lambda s: (-counts[s], s)):
    fold = min(range(k), key=lambda f: (load[f], f))
    folds[subject] = fold + 1
    load[fold] += counts[subject]
  return folds


def read_study(root, problems: list, warnings: list) -> Study:
  """The study at `root`: settings, labels, folds and each recording's files."""
  root = pathlib.Path(root)
  study = Study(root)
  if not root.is_dir():
    problems.append(f"{root}: the study folder does not exist or is not a folder.")
    return study
  study.settings = read_settings(root, problems)
  study.name = config_name(study.settings.get("name") or root.resolve().name)
  path = root / LABEL_FILE
  rows, study.labels = read_labels(path, study.settings, problems)
  seen, kept = set(), []
  for line, row in enumerate(rows, start=2):
    rid = row[ID]
    if not rid or not re.fullmatch(r"[\w.\-]+", rid):
      problems.append(f"{path} line {line}: id {rid!r}; expected letters, digits, _, - or '.'.")
    elif not row[SUBJECT]:
      problems.append(f"{path} line {line} (recording {rid}): empty subject.")
    elif rid in seen:
      problems.append(f"{path} line {line}: duplicate id {rid}; it is on an earlier line too.")
    else:
      seen.add(rid)
      kept.append((line, row))
  study.folds_given = FOLD in (rows[0] if rows else {})
  folds = {}
  if study.folds_given:
    by_subject = collections.defaultdict(set)
    for line, row in kept:
      if not re.fullmatch(r"\d+", row[FOLD]) or int(row[FOLD]) < 1:
        problems.append(
          f"{path} line {line} (recording {row[ID]}): fold {row[FOLD]!r}; expected 1, 2, …."
        )
        continue
      folds[row[ID]] = int(row[FOLD])
      by_subject[row[SUBJECT]].add(int(row[FOLD]))
    for subject, given in sorted(by_subject.items()):
      if len(given) > 1:
        ids = [r[ID] for _, r in kept if r[SUBJECT] == subject]
        problems.append(
          f"{path}: subject {subject} is split across folds {sorted(given)} (recordings "
          f"{', '.join(ids)}); expected all of a subject's recordings in one fold."
        )
  else:
    grouped = subject_folds(collections.Counter(row[SUBJECT] for _, row in kept))
    folds = {row[ID]: grouped[row[SUBJECT]] for _, row in kept}
  study.subjects = tuple(sorted({row[SUBJECT] for _, row in kept}))
  for _, row in kept:
    rid = row[ID]
    eye = eye_candidates(root / EYE_DIR, rid)
    frames = root / FRAMES_DIR / rid
    frames = frames if frames.is_dir() else None
    video = find_one(root / VIDEO_DIR, rid, VIDEO_SUFFIXES, problems)
    if len(eye) > 1:
      problems.append(
        f"{root / EYE_DIR}: several eye files for recording {rid}: {[p.name for p in eye]}."
      )
    if not eye:
      problems.append(
        f"recording {rid}: no eye file; expected {EYE_DIR}/{rid}.<ext> or {EYE_DIR}/{rid}/."
      )
    if frames is None and video is None:
      problems.append(
        f"recording {rid}: no face video or frames; expected {VIDEO_DIR}/{rid}.mp4 (or "
        f"{', '.join(VIDEO_SUFFIXES[1:])}) or a folder {FRAMES_DIR}/{rid}/."
      )
    if len(eye) != 1 or (frames is None and video is None) or rid not in folds:
      continue
    values = {
      lab.name: lab.classes.index(row[lab.name]) if lab.is_class else float(row[lab.name])
      for lab in study.labels
    }
    study.entries.append(Entry(rid, row[SUBJECT], folds[rid], values, eye[0], video, frames))
  study.entries.sort(key=lambda e: e.id)
  if rows or not problems:
    for sub in (EYE_DIR, VIDEO_DIR, FRAMES_DIR):
      folder = root / sub
      for p in sorted(folder.iterdir()) if folder.is_dir() else ():
        if p.name not in seen and p.stem not in seen:
          warnings.append(f"{p}: not in {LABEL_FILE}; ignored.")
  if not rows and path.exists() and not problems:
    problems.append(f"{path}: no recording.")
  return study
