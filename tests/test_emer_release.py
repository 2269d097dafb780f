"""The `real` path: fake release → reader/validator → TFDS build, aliases, malformed releases."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from tfds_emer import emer, face_media, release
from tfds_emer import release_layout as layout
from tfds_emer.fake_release import write_release
from tfds_emer.release import ReleaseError
from tfds_emer.sim.config import SimConfig
from tfds_emer.validate import validate

CFG = SimConfig(seed=3, num_subjects=2, num_samples=8)
FRAMES = 8


def _build(data_dir, name, sim=None, manual_dir=None):
  builder = emer.Emer(
    config=emer.EmerConfig(name=name, face_frames=FRAMES, sim=sim), data_dir=str(data_dir)
  )
  builder.download_and_prepare(
    file_format="array_record",
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir and str(manual_dir)),
  )
  source = builder.as_data_source(split="train")
  return builder, {source[i]["sample_id"].decode(): source[i] for i in range(len(source))}


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
  root = tmp_path_factory.mktemp("release")
  write_release(root, CFG, frames_per_clip=FRAMES, eye_format="xlsx", faces="both", progress=False)
  return root


@pytest.fixture(scope="session")
def sim_examples(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("sim"), "sim_test", sim=CFG)[1]


def _assert_matches_sim(got, want, face_tol):
  assert got.keys() == want.keys()
  for sid, ex in got.items():
    ref = want[sid]
    for key in ref:
      if key == "face":
        assert np.abs(ex[key].astype(int) - ref[key]).mean() < face_tol, sid
      elif key == "fixation_map":
        np.testing.assert_allclose(ex[key], ref[key], atol=1e-5, err_msg=sid)
      else:
        np.testing.assert_array_equal(ex[key], ref[key], err_msg=f"{sid} {key}")


def test_round_trip_from_frames(fake, sim_examples, tmp_path):
  builder, got = _build(tmp_path, "real_test", manual_dir=fake)
  _assert_matches_sim(got, sim_examples, face_tol=3.0)  # JPEG loss only
  assert builder.info.metadata["eye_columns"][2:4] == ["Gaze point X", "Gaze point Y"]


def test_round_trip_from_video_and_tsv(fake, sim_examples, tmp_path):
  manual = tmp_path / "release"
  shutil.copytree(fake, manual)
  shutil.rmtree(manual / layout.FACE_FRAMES_DIR)
  # EMER-Sim's videos hold its drawn, aligned faces: no face detection.
  (manual / layout.MAPPING_FILE).write_text(json.dumps({"face_video": "aligned"}))
  for path in (manual / layout.EYE_DIR).iterdir():
    pd.read_excel(path).to_csv(path.with_suffix(".tsv"), sep="\t", index=False, na_rep="")
    path.unlink()
  _, got = _build(tmp_path / "data", "real_test", manual_dir=manual)
  _assert_matches_sim(got, sim_examples, face_tol=8.0)  # mp4v video loss


def _labels(root):
  problems, warnings = [], []
  labels = release.read_labels(root, release.load_mapping(root), problems, warnings)
  assert not problems, problems
  return labels


def _write_sheet(root, table):
  table.to_excel(root / layout.LABEL_FILE, index=False)


@pytest.fixture
def sheet(fake, tmp_path):
  shutil.copy(fake / layout.LABEL_FILE, tmp_path / layout.LABEL_FILE)
  return tmp_path, pd.read_excel(tmp_path / layout.LABEL_FILE), _labels(tmp_path)


def test_alias_prefixed_headers(sheet):
  root, table, want = sheet
  table.columns = [
    "id",
    "ER emotion",
    "ER polarity",
    "ER valence",
    "ER arousal",
    "FER emotion",
    "FER polarity",
    "FER valence",
    "FER arousal",
    "Intensity",
  ]
  _write_sheet(root, table)
  assert _labels(root) == want


def _label_problems(root):
  problems = []
  release.read_labels(root, release.load_mapping(root), problems, [])
  return problems


def test_unprefixed_headers_are_never_assigned_by_order(sheet):
  root, table, _ = sheet
  table.columns = ["Sample", *["Emotion", "3class", "Valence", "Arousal"] * 2, "Intensity"]
  _write_sheet(root, table)
  (problem,) = [p for p in _label_problems(root) if "no ER/FER prefix" in p]
  assert str(root / layout.LABEL_FILE) in problem
  assert "['Emotion', 'Emotion.1', '3class', '3class.1', 'Valence', 'Valence.1'," in problem
  assert "never assigned by their order" in problem and "label_columns" in problem


def test_duplicated_canonical_header_is_a_defect(sheet):
  root, table, _ = sheet
  _write_sheet(root, pd.concat([table, table[["ER_valence"]] * 0], axis=1))
  (problem,) = _label_problems(root)
  assert problem.startswith(f"{root / layout.LABEL_FILE}: ER_valence is given by 2 columns")
  assert "['ER_valence', 'ER_valence.1']; expected exactly one" in problem


def test_alias_class_indices_and_names(sheet):
  root, table, want = sheet
  words = {"happiness": "Happy", "sadness": "sad", "anger": "ANGRY", "fear": "afraid"}
  table["ER_7class"] = table["ER_7class"].map(lambda e: words.get(e, e))
  table["FER_7class"] = [want[s].fer_emotion for s in table["ID"]]
  table["ER_3class"] = [want[s].er_polarity for s in table["ID"]]
  _write_sheet(root, table)
  assert _labels(root) == want


def test_alias_one_based_indices_via_mapping(sheet):
  root, table, want = sheet
  table["FER_7class"] = [want[s].fer_emotion + 1 for s in table["ID"]]
  table["FER_3class"] = [want[s].fer_polarity + 1 for s in table["ID"]]
  table["ER_7class"] = [want[s].er_emotion + 1 for s in table["ID"]]
  table["ER_3class"] = [want[s].er_polarity + 1 for s in table["ID"]]
  _write_sheet(root, table)
  (root / layout.MAPPING_FILE).write_text(json.dumps({"class_index_base": 1}))
  assert _labels(root) == want


def test_alias_mapping_file_columns(sheet):
  root, table, want = sheet
  odd = {c: f"col {i}" for i, c in enumerate(table.columns)}
  _write_sheet(root, table.rename(columns=odd))
  (root / layout.MAPPING_FILE).write_text(json.dumps({"label_columns": odd}))
  assert _labels(root) == want


def _folds(root, text):
  (root / layout.SET_FILE).write_text(text)
  problems = []
  folds = release.read_folds(root, release.load_mapping(root), problems)
  assert not problems, problems
  return folds


@pytest.mark.parametrize(
  "text",
  [
    "a_film_sad set1\nb_sport_happy set2\n",
    "a_film_sad\tset1\nb_sport_happy\tset2\n",
    "a_film_sad,1\nb_sport_happy,2\n",
    "set1: a_film_sad\nset2: b_sport_happy\n",
    "set1\na_film_sad\nset2\nb_sport_happy\n",
    "Fold1: a_film_sad,\nfold 2: b_sport_happy\n",
  ],
)
def test_alias_fold_forms(tmp_path, text):
  assert _folds(tmp_path, text) == {"a_film_sad": 1, "b_sport_happy": 2}


def test_fold_mapping_file(tmp_path):
  (tmp_path / layout.MAPPING_FILE).write_text(json.dumps({"folds": {"a_film_sad": 4}}))
  assert _folds(tmp_path, "") == {"a_film_sad": 4}


def test_fold_file_and_mapping_with_a_byte_order_mark(tmp_path):
  (tmp_path / layout.MAPPING_FILE).write_text('{"class_index_base": 1}', encoding="utf-8-sig")
  assert release.load_mapping(tmp_path) == {"class_index_base": 1}
  assert _folds(tmp_path, "\ufeffa_film_sad set1\n") == {"a_film_sad": 1}


def test_utf16_fold_file_names_itself_and_the_encoding(tmp_path):
  path = tmp_path / layout.SET_FILE
  path.write_text("a_film_sad set1\n", encoding="utf-16")
  problems = []
  assert release.read_folds(tmp_path, {}, problems) == {}
  assert problems == [
    f"{path}: not UTF-8 text (it is UTF-16): byte 0 (b'\\xff') invalid start byte; expected "
    "UTF-8 (with or without a byte-order mark): save it as UTF-8."
  ]


def test_frames_in_natural_order(tmp_path):
  for i in range(12):  # frame i is grey level 20 * i; `10.jpg` sorts before `2.jpg` as text
    cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((8, 8, 3), 20 * i, np.uint8))
  faces = face_media.read_faces(tmp_path, None, 12, size=8)
  np.testing.assert_allclose(faces.mean(axis=(1, 2, 3)), 20 * np.arange(12), atol=2)


# --- malformed releases: each defect must produce its own message ---------------------------

SMALL = SimConfig(seed=5, num_subjects=1, num_samples=3)


@pytest.fixture(scope="session")
def small(tmp_path_factory):
  root = tmp_path_factory.mktemp("small")
  sim = write_release(
    root,
    SMALL,
    frames_per_clip=4,
    eye_format="tsv",
    faces="both",
    header_style="plain",
    progress=False,
  )
  return root, [s.sample_id for s in sim.samples]


def _edit_sheet(root, fn):
  table = pd.read_excel(root / layout.LABEL_FILE)
  _write_sheet(root, fn(table))


def _edit_eye(root, sid, fn):
  path = root / layout.EYE_DIR / f"{sid}.tsv"
  fn(pd.read_csv(path, sep="\t")).to_csv(path, sep="\t", index=False, na_rep="")


def _set(table, col, value):
  table[col] = table[col].astype(object)
  table.loc[0, col] = value
  return table


def _blank_gaze(table):
  table.loc[:, ["Gaze point X", "Gaze point Y"]] = np.nan
  return table


def _truncated_video(root, sid, keep):
  """Replaces `sid`'s faces by a 20-frame AVI cut to `keep` of its bytes (its header intact)."""
  shutil.rmtree(root / layout.FACE_FRAMES_DIR / sid)
  (root / layout.FACE_VIDEO_DIR / f"{sid}.mp4").unlink()
  path = root / layout.FACE_VIDEO_DIR / f"{sid}.avi"
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
  for frame in np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8):
    writer.write(frame)
  writer.release()
  path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
  mapping = root / layout.MAPPING_FILE  # random frames hold no face to find: take them as aligned
  known = json.loads(mapping.read_text()) if mapping.exists() else {}
  mapping.write_text(json.dumps(known | {"face_video": "aligned"}))
  return path


DEFECTS = {
  "missing label row": (lambda r, ids: _edit_sheet(r, lambda t: t.iloc[1:]), "missing label row"),
  "unknown class name": (
    lambda r, ids: _edit_sheet(r, lambda t: _set(t, "ER_7class", "joyous")),
    "ER_7class 'joyous' is not a known class",
  ),
  "valence out of range": (
    lambda r, ids: _edit_sheet(r, lambda t: _set(t, "ER_valence", 1.5)),
    "ER_valence 1.5 is outside [-1, 1]",
  ),
  "intensity out of range": (
    lambda r, ids: _edit_sheet(r, lambda t: _set(t, "FER_intensity", 3.5)),
    "FER_intensity 3.5 is outside [0, 3]",
  ),
  "duplicate ID": (
    lambda r, ids: _edit_sheet(r, lambda t: pd.concat([t, t.iloc[:1]])),
    "duplicate ID",
  ),
  "bad ID": (
    lambda r, ids: _edit_sheet(r, lambda t: _set(t, "ID", "subject one")),
    "does not look like",
  ),
  "unmappable column": (
    lambda r, ids: _edit_sheet(r, lambda t: t.drop(columns="ER_arousal")),
    "cannot map label column(s) ['ER_arousal']",
  ),
  "sample in two folds": (
    lambda r, ids: (r / layout.SET_FILE).open("a").write(f"{ids[0]} set5\n"),
    "sample {id0} is in set",
  ),
  "sample in no fold": (
    lambda r, ids: (r / layout.SET_FILE).write_text(f"{ids[1]} set1\n{ids[2]} set2\n"),
    "sample {id0} is labelled but in no fold",
  ),
  "unparsable fold line": (
    lambda r, ids: (r / layout.SET_FILE).open("a").write("what is this\n"),
    "cannot parse 'what is this'",
  ),
  "fold out of range": (
    lambda r, ids: (r / layout.SET_FILE).open("a").write(f"{ids[0]} set7\n"),
    "cannot parse '{id0} set7'",
  ),
  "missing label file": (
    lambda r, ids: (r / layout.LABEL_FILE).unlink(),
    "missing; expected the label sheet",
  ),
  "bad mapping file": (
    lambda r, ids: (r / layout.MAPPING_FILE).write_text("{oops"),
    "not valid JSON",
  ),
  "missing eye file": (
    lambda r, ids: (r / layout.EYE_DIR / f"{ids[0]}.tsv").unlink(),
    "no eye export for sample {id0}",
  ),
  "two eye files": (
    lambda r, ids: shutil.copy(
      r / layout.EYE_DIR / f"{ids[0]}.tsv", r / layout.EYE_DIR / f"{ids[0]}.csv"
    ),
    "several files for {id0}",
  ),
  "empty eye file": (lambda r, ids: _edit_eye(r, ids[0], lambda t: t.iloc[:0]), "empty eye export"),
  "unreadable eye file": (
    lambda r, ids: (
      (r / layout.EYE_DIR / f"{ids[0]}.tsv").unlink()
      or (r / layout.EYE_DIR / f"{ids[0]}.xlsx").write_bytes(b"not a zip")
    ),
    "unreadable eye export",
  ),
  "missing gaze columns": (
    lambda r, ids: _edit_eye(r, ids[0], lambda t: t.rename(columns={"Gaze point X": "Gaze X"})),
    "no gaze columns",
  ),
  "missing eye column": (
    lambda r, ids: _edit_eye(r, ids[0], lambda t: t.drop(columns="Pupil diameter left")),
    "missing column(s) the model needs: 'Pupil diameter left' ('Pupil diameter left [mm]')",
  ),
  "text cell in an eye column": (
    lambda r, ids: _edit_eye(r, ids[1], lambda t: _set(t, "Pupil diameter left", "3.1mm")),
    "{id1}.tsv: column 'Pupil diameter left' row 2: '3.1mm' is not a number",
  ),
  "eye cell beyond float32": (
    lambda r, ids: _edit_eye(r, ids[1], lambda t: _set(t, "Eyetracker timestamp", 1e308)),
    "{id1}.tsv: column 'Eyetracker timestamp' row 2: 1e+308 is beyond float32",
  ),
  "eye column twice": (
    lambda r, ids: _edit_eye(
      r, ids[0], lambda t: t.assign(**{"Pupil diameter left [mm]": t["Pupil diameter left"]})
    ),
    "columns 'Pupil diameter left' and 'Pupil diameter left [mm]' both give",
  ),
  "all-NaN eye rows": (lambda r, ids: _edit_eye(r, ids[0], _blank_gaze), "no valid row"),
  "zero face frames": (
    lambda r, ids: (
      [p.unlink() for p in (r / layout.FACE_FRAMES_DIR / ids[0]).iterdir()]
      and (r / layout.FACE_VIDEO_DIR / f"{ids[0]}.mp4").unlink()
    ),
    "zero face frames and no face video",
  ),
  "unreadable video": (
    lambda r, ids: (
      shutil.rmtree(r / layout.FACE_FRAMES_DIR / ids[0])
      or (r / layout.FACE_VIDEO_DIR / f"{ids[0]}.mp4").write_bytes(b"garbage")
    ),
    "unreadable face video",
  ),
  "truncated video": (
    lambda r, ids: _truncated_video(r, ids[0], 0.4),
    "{id0}.avi: only 5 of the 20 frames its header declares decode (25%, under 90%)",
  ),
  "duplicated label header": (
    lambda r, ids: _edit_sheet(r, lambda t: pd.concat([t, t[["FER_7class"]]], axis=1)),
    "FER_7class is given by 2 columns ['FER_7class', 'FER_7class.1']",
  ),
  "UTF-16 fold file": (
    lambda r, ids: (r / layout.SET_FILE).write_text(
      (r / layout.SET_FILE).read_text(), encoding="utf-16"
    ),
    "emer_set.txt: not UTF-8 text (it is UTF-16)",
  ),
  "unreadable frame": (
    lambda r, ids: (r / layout.FACE_FRAMES_DIR / ids[0] / "00000.jpg").write_bytes(b"garbage"),
    "unreadable face frame",
  ),
}


@pytest.fixture
def broken(small, tmp_path):
  root, ids = small
  copy = tmp_path / "release"
  shutil.copytree(root, copy)
  return copy, ids


def test_clean_release_validates(small):
  report = validate(small[0], face_frames=4)
  assert report.ok, report.problems
  assert "samples: 3" in report.text() and "set" in report.text()


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_malformed_release(broken, defect):
  root, ids = broken
  mutate, message = DEFECTS[defect]
  message = message.format(id0=ids[0], id1=ids[1])
  mutate(root, ids)
  report = validate(root, face_frames=4)
  assert not report.ok
  assert any(message in p for p in report.problems), report.problems


def test_video_short_of_its_header_is_a_warning_in_validate_and_build(broken, tmp_path, caplog):
  root, ids = broken
  path = _truncated_video(root, ids[0], 0.95)
  report = validate(root, face_frames=4)
  assert report.ok, report.problems
  want = f"{path}: only 19 of the 20 frames its header declares decode; frames are sampled"
  assert [w for w in report.warnings if want in w], report.warnings
  assert report.text().endswith("OK: 3 samples, 0 defects, 1 warning")
  with caplog.at_level("WARNING"):
    _build(tmp_path / "data", "real_test", manual_dir=root)
  assert want in caplog.text


# Found before decoding (labels), and while decoding in the build's single pass (an export).
@pytest.mark.parametrize("defect", ["valence out of range", "eye cell beyond float32"])
def test_failed_build_leaves_nothing(broken, tmp_path, defect):
  root, ids = broken
  mutate, message = DEFECTS[defect]
  mutate(root, ids)
  data_dir = tmp_path / "data"
  with pytest.raises(ReleaseError) as info:
    _build(data_dir, "real_test", manual_dir=root)
  assert any(message.format(id0=ids[0], id1=ids[1]) in p for p in info.value.problems)
  # TFDS keeps only its builder-class note (.config/); no dataset file, no incomplete folder.
  leftovers = [p for p in data_dir.rglob("*") if p.is_file() and ".config" not in p.parts]
  assert not leftovers
  assert not list(data_dir.rglob("1.0.0"))


def test_blank_label_rows_are_skipped(sheet):
  root, table, want = sheet
  blank = pd.DataFrame([[None] * len(table.columns)], columns=table.columns)
  _write_sheet(root, pd.concat([table, blank, blank]))
  assert _labels(root) == want
