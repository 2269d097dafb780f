"""Reader for the real EMER release in `manual_dir` (labels, folds, eye exports, faces).

Accepted forms (see tfds_emer/README.md):
- `EMER_label.xlsx`: the canonical columns (`release_layout.LABEL_COLUMNS`) or aliases such as
  `id`/`sample`, `ER emotion`, `FER valence` (an unprefixed `Intensity` is FER's: only FER has
  one); each exactly once. Columns without an ER/FER prefix (`Emotion`, `Valence`, …) are never
  assigned to a view by their order: name the view, or map them in the mapping file. Classes
  as names (with aliases like `happy`) or 0-based indices in `EMOTIONS`/`POLARITIES` order.
- `emer_set.txt` (UTF-8, with or without a byte-order mark): `<ID> set3` (or `<ID><TAB>set3`,
  `<ID>,3`) per line; `set3: id, id, …` per fold; or a `set3` header line followed by its IDs.
- Eye exports as Tobii Pro Lab writes them (`eye_export.read_export`).
- `emer_mapping.json` (optional): {"label_columns": {canonical: header}, "class_index_base": 1,
  "eye_columns": [39 headers], "gaze_columns": [x, y], "folds": {ID: fold}, "screen_px": [w, h],
  "face_video": "aligned"} overrides detection and defaults ("face_video": "aligned" says the
  videos hold aligned faces, not raw recordings to crop faces from).
"""

import dataclasses
import json
import pathlib
import re

import numpy as np
import pandas as pd

from tfds_emer import eye_export
from tfds_emer import release_layout as layout
from tfds_emer.vocabulary import EMOTIONS, POLARITIES

CLASS_ALIASES = {
  "happy": "happiness",
  "joy": "happiness",
  "sad": "sadness",
  "afraid": "fear",
  "fearful": "fear",
  "surprised": "surprise",
  "disgusted": "disgust",
  "angry": "anger",
  "calm": "neutral",
  "pos": "positive",
  "neg": "negative",
  "neu": "neutral",
}
_GENERIC = {
  "7class": ("7class", "emotion", "7cls", "class7", "category"),
  "3class": ("3class", "polarity", "sentiment", "3cls", "class3"),
  "valence": ("valence", "val", "v"),
  "arousal": ("arousal", "aro", "a"),
  "intensity": ("intensity", "int"),
}
_ID_ALIASES = ("id", "sample", "sampleid", "samplename", "name", "video", "file")
_ID_PATTERN = re.compile(r"^(\d+)_(film|sport)_([a-z]+)$", re.IGNORECASE)


class ReleaseError(ValueError):
  """The release cannot be read; `problems` lists every defect found."""

  def __init__(self, problems):
    self.problems = list(problems)
    super().__init__("EMER release is not readable:\n  " + "\n  ".join(self.problems))


def _norm(header) -> str:
  return re.sub(r"[^a-z0-9]", "", str(header).lower())


def read_text(path: pathlib.Path) -> str:
  """A UTF-8 text file, with or without a byte-order mark; raises ReleaseError naming it if not."""
  try:
    return path.read_text(encoding="utf-8-sig")
  except UnicodeDecodeError as e:
    utf16 = e.object[:2] in (b"\xff\xfe", b"\xfe\xff")
    raise ReleaseError(
      [
        f"{path}: not UTF-8 text{' (it is UTF-16)' if utf16 else ''}: byte {e.start} "
        f"({e.object[e.start : e.start + 1]!r}) {e.reason}; expected UTF-8 (with or without a "
        "byte-order mark): save it as UTF-8."
      ]
    ) from e


def load_mapping(manual_dir: pathlib.Path) -> dict:
  path = manual_dir / layout.MAPPING_FILE
  if not path.exists():
    return {}
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise ReleaseError([f"{path}: not valid JSON ({e})."]) from e


def _base(header) -> str:
  """`header` normalised, without the `.1` pandas appends to a repeated header."""
  return _norm(re.sub(r"\.\d+$", "", str(header)))


def _copies(header, headers) -> list:
  """`header` and pandas' renamed repeats of it (`X.1`, `X.2`, …)."""
  again = re.compile(re.escape(str(header)) + r"\.\d+")
  return [h for h in headers if h == header or again.fullmatch(str(h))]


def map_label_columns(headers, mapping: dict, where: str) -> dict:
  """Canonical column → header in the sheet; raises naming what was found and expected.

  A canonical name (any spelling) wins over its aliases; a column given twice, or several
  aliases of one column with no canonical one, is a defect. Unprefixed view columns
  (`Emotion`, `Valence`, …) are never assigned by their order.
  """
  headers = list(headers)
  given = mapping.get("label_columns", {})
  found, problems, unprefixed, duplicated = {}, [], [], set()
  for canon in layout.LABEL_COLUMNS:
    if canon in given:
      hits = [given[canon]] if given[canon] in headers else []
    else:
      if canon == "ID":
        aliases = set(_ID_ALIASES)
      else:
        view, kind = canon.split("_", 1)
        aliases = {_norm(view) + a for a in _GENERIC[kind]}
      hits = [h for h in headers if _base(h) == _norm(canon)]
      hits = hits or [h for h in headers if _base(h) in aliases]
      if not hits and canon != "ID":
        plain = [h for h in headers if _base(h) in _GENERIC[kind]]
        if kind == "intensity" and len(plain) == 1:
          hits = plain  # only FER has an intensity
        else:
          unprefixed += [h for h in plain if h not in unprefixed]
    copies = list(dict.fromkeys(c for h in hits for c in _copies(h, headers)))
    if len(copies) > 1:
      duplicated.add(canon)
      problems.append(
        f"{where}: {canon} is given by {len(copies)} columns {[str(c) for c in copies]}; "
        f"expected exactly one (remove the others, or name the one to use under "
        f"'label_columns' in {layout.MAPPING_FILE})."
      )
    elif hits:
      found[canon] = hits[0]
  if unprefixed:
    problems.append(
      f"{where}: column(s) {[str(h) for h in unprefixed]} have no ER/FER prefix, so which "
      f"view each holds is unknown (columns are never assigned by their order); rename them "
      f"(e.g. ER_valence, FER_valence) or map them under 'label_columns' in "
      f"{layout.MAPPING_FILE}."
    )
  missing = [c for c in layout.LABEL_COLUMNS if c not in found and c not in duplicated]
  if missing:
    absent = {c: given[c] for c in missing if c in given}
    problems.append(
      f"{where}: cannot map label column(s) {missing}"
      + (f" (mapped to absent headers {absent})" if absent else "")
      + f"; found columns {[str(h) for h in headers]}; expected {list(layout.LABEL_COLUMNS)} "
      f"or their aliases (or a 'label_columns' entry in {layout.MAPPING_FILE})."
    )
  if problems:
    raise ReleaseError(problems)
  return found


def parse_class(value, names, base: int):
  """Index of a class given by name, alias or index; None if unknown."""
  if isinstance(value, int | float | np.integer | np.floating) and not pd.isna(value):
    idx = int(value) - base
    return idx if float(value) == int(value) and 0 <= idx < len(names) else None
  text = str(value).strip().lower()
  if re.fullmatch(r"\d+", text):
    return parse_class(int(text), names, base)
  text = CLASS_ALIASES.get(text, text)
  return names.index(text) if text in names else None


@dataclasses.dataclass(frozen=True)
class Label:
  sample_id: str
  subject_id: int
  stimulus: int
  er_emotion: int
  er_polarity: int
  er_valence: float
  er_arousal: float
  fer_emotion: int
  fer_polarity: int
  fer_valence: float
  fer_arousal: float
  fer_intensity: float
  fold: int = 0


def read_labels(manual_dir: pathlib.Path, mapping: dict, problems: list, warnings: list):
  """{ID: Label} from the label sheet (fold still 0); defects go to `problems`."""
  path = manual_dir / layout.LABEL_FILE
  if not path.exists():
    problems.append(f"{path}: missing; expected the label sheet {layout.LABEL_FILE}.")
    return {}
  try:
    sheet = pd.read_excel(path, sheet_name=mapping.get("label_sheet", 0))
  except Exception as e:  # noqa: BLE001 - any unreadable workbook is one defect
    problems.append(f"{path}: unreadable as a spreadsheet ({type(e).__name__}: {e}).")
    return {}
  try:
    cols = map_label_columns(list(sheet.columns), mapping, str(path))
  except ReleaseError as e:
    problems.extend(e.problems)
    return {}
  unused = [str(h) for h in sheet.columns if h not in cols.values()]
  if unused:
    warnings.append(f"{path}: column(s) {unused} not used.")
  base = int(mapping.get("class_index_base", 0))
  labels = {}
  for row, rec in enumerate(sheet.to_dict("records"), start=2):
    if all(pd.isna(v) for v in rec.values()):
      continue  # blank row
    raw_id = rec[cols["ID"]]
    if pd.isna(raw_id):
      problems.append(f"{path} row {row}: empty ID.")
      continue
    sid = str(raw_id).strip()
    where = f"{path} row {row} (ID {sid})"
    if sid in labels:
      problems.append(f"{where}: duplicate ID; it is already labelled on an earlier row.")
      continue
    match = _ID_PATTERN.match(sid)
    if not match:
      problems.append(f"{where}: ID does not look like <subject>_<film|sport>_<emotion>.")
      continue
    values, ok = {}, True
    for canon in layout.LABEL_COLUMNS[1:]:
      v = rec[cols[canon]]
      if canon.endswith("class"):
        names = EMOTIONS if canon.endswith("7class") else POLARITIES
        idx = None if pd.isna(v) else parse_class(v, names, base)
        if idx is None:
          problems.append(
            f"{where}: {canon} {v!r} is not a known class; expected one of {list(names)} "
            f"or an index from {base} to {base + len(names) - 1}."
          )
          ok = False
        values[canon] = idx
        continue
      lo, hi = (0.0, 3.0) if canon == "FER_intensity" else (-1.0, 1.0)
      try:
        x = float(v)
      except (TypeError, ValueError):
        x = float("nan")
      if not lo <= x <= hi:
        problems.append(f"{where}: {canon} {v!r} is outside [{lo:g}, {hi:g}] or not a number.")
        ok = False
      values[canon] = x
    if not ok:
      continue
    for view in ("ER", "FER"):
      v = values[f"{view}_valence"]
      sign = POLARITIES.index("positive" if v > 0 else "negative" if v < 0 else "neutral")
      if values[f"{view}_3class"] != sign:
        warnings.append(
          f"{where}: {view}_3class {POLARITIES[values[f'{view}_3class']]} is not the sign of "
          f"{view}_valence {v:g}; kept as given."
        )
    neutral_face = values["FER_7class"] == EMOTIONS.index("neutral")
    if neutral_face != (values["FER_intensity"] == 0):
      warnings.append(
        f"{where}: FER_intensity {values['FER_intensity']:g} with FER_7class "
        f"{EMOTIONS[values['FER_7class']]}; intensity is 0 exactly for neutral displays."
      )
    labels[sid] = Label(
      sample_id=sid,
      subject_id=int(match.group(1)),
      stimulus=0 if match.group(2).lower() == "film" else 1,
      er_emotion=values["ER_7class"],
      er_polarity=values["ER_3class"],
      er_valence=values["ER_valence"],
      er_arousal=values["ER_arousal"],
      fer_emotion=values["FER_7class"],
      fer_polarity=values["FER_3class"],
      fer_valence=values["FER_valence"],
      fer_arousal=values["FER_arousal"],
      fer_intensity=values["FER_intensity"],
    )
  return labels


_FOLD = re.compile(r"^(?:set|fold)?\s*([1-5])$", re.IGNORECASE)


def _fold_number(token: str):
  m = _FOLD.match(token.strip())
  return int(m.group(1)) if m else None


def read_folds(manual_dir: pathlib.Path, mapping: dict, problems: list) -> dict:
  """{ID: fold 1..5} from `emer_set.txt` (or the mapping file's 'folds')."""
  if "folds" in mapping:
    return {str(k): int(v) for k, v in mapping["folds"].items()}
  path = manual_dir / layout.SET_FILE
  if not path.exists():
    problems.append(f"{path}: missing; expected the fold file {layout.SET_FILE}.")
    return {}
  try:
    text = read_text(path)
  except ReleaseError as e:
    problems.extend(e.problems)
    return {}
  folds, current = {}, None

  def assign(sid, fold, lineno):
    if sid in folds and folds[sid] != fold:
      problems.append(
        f"{path} line {lineno}: sample {sid} is in set{folds[sid]} and set{fold}; "
        "expected each sample in exactly one fold."
      )
    folds[sid] = fold

  for lineno, line in enumerate(text.splitlines(), start=1):
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    head, sep, rest = line.partition(":")
    if sep and _fold_number(head) is not None:  # set3: id, id, ...
      for sid in re.split(r"[,\s]+", rest.strip()):
        if sid:
          assign(sid, _fold_number(head), lineno)
      continue
    if _fold_number(line) is not None:  # header line of a one-fold-per-block file
      current = _fold_number(line)
      continue
    tokens = [t for t in re.split(r"[,\t ]+", line) if t]
    if len(tokens) == 2 and _fold_number(tokens[1]) is not None:
      assign(tokens[0], _fold_number(tokens[1]), lineno)
    elif len(tokens) == 1 and current is not None:
      assign(tokens[0], current, lineno)
    else:
      problems.append(
        f"{path} line {lineno}: cannot parse {line!r}; expected '<ID> set<1-5>', "
        "'set<k>: id, id, …', or a 'set<k>' line followed by its IDs."
      )
  return folds


EyeExport = eye_export.EyeExport


def read_eye(path: pathlib.Path, mapping: dict | None = None) -> EyeExport:
  """An export's rows on the model's 39 columns (`eye_export.read_export`); raises ReleaseError."""
  try:
    return eye_export.read_export(path, mapping)
  except eye_export.ExportError as e:
    raise ReleaseError([str(e)]) from e


def find_file(folder: pathlib.Path, sample_id: str, suffixes, problems: list):
  """The one file `<folder>/<ID>.<suffix>`; None (with a problem noted if ambiguous)."""
  hits = [folder / f"{sample_id}{s}" for s in suffixes if (folder / f"{sample_id}{s}").exists()]
  if len(hits) > 1:
    problems.append(f"{folder}: several files for {sample_id}: {[h.name for h in hits]}.")
  return hits[0] if hits else None
