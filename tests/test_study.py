"""A study of your own: fake_study → validate → build → tfds.data_source, and each defect."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

import tfds_emer  # noqa: F401 - registers emer_study
from tfds_emer import build, fake_study
from tfds_emer.study import layout
from tfds_emer.study.check import validate_study
from tfds_emer.trackers import schema

PLAN = fake_study.Plan(recordings=16, subjects=4, frames=6, seconds=1.0, eye_rate=30.0)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
  root = tmp_path_factory.mktemp("studies") / "my study"
  fake_study.write_study(root, PLAN)
  return root


@pytest.fixture
def study(made, tmp_path):
  root = tmp_path / "study"
  shutil.copytree(made, root)
  return root


@pytest.fixture(scope="module")
def made_small(tmp_path_factory):
  """8 recordings of 4 subjects, both trackers, aligned frames: what each defect test breaks."""
  root = tmp_path_factory.mktemp("studies") / "small"
  fake_study.write_study(
    root,
    fake_study.Plan(recordings=8, subjects=4, frames=2, seconds=0.5, eye_rate=30.0, faces="frames"),
  )
  return root


@pytest.fixture
def small(made_small, tmp_path):
  root = tmp_path / "small"
  shutil.copytree(made_small, root)
  return root


def test_a_study_of_two_trackers_is_validated_built_and_read_back_without_it(study, tmp_path):
  report = validate_study(study)
  assert report.ok, report.text()
  assert report.study.name == "my_study"  # study.json's name, made a TFDS config name
  assert set(report.formats.values()) == {"tobii", "gazepoint"}
  assert len(report.rows) == 16 and all(r.rows >= 29 for r in report.rows)
  assert all(r.faces.endswith("/6 found") or r.faces == "aligned frames" for r in report.rows)
  text = report.text()
  assert text.splitlines()[-1] == "OK: 16 recordings, 0 defects, 0 warnings"
  assert "fixations" in text and "30 Hz" in text

  labels = pd.read_csv(study / "labels.csv").set_index("id")
  data_dir = tmp_path / "data"
  build.build_study(study, data_dir, face_frames=4, workers=1)
  shutil.move(study, tmp_path / "elsewhere")  # the dataset needs no study to be read
  source = tfds.data_source("emer_study/my_study", data_dir=str(data_dir), split="train")
  info = tfds.builder("emer_study/my_study", data_dir=str(data_dir)).info
  classes = info.features["emotion"].names
  assert classes == list(fake_study.EMOTIONS)  # the order study.json gives
  assert len(source) == 16
  folds, subjects = {}, info.metadata["subjects"]
  for ex in source:
    sid = ex["sample_id"].decode()
    assert ex["face"].shape == (4, 112, 112, 3) and ex["face"].dtype == np.uint8
    assert ex["eye"].shape[1] == 2 * schema.WIDTH and ex["eye"].dtype == np.float32
    np.testing.assert_array_equal(ex["gaze"], ex["eye"][:, 1:3])
    assert ex["fixation_map"].shape == (64, 64, 1) and ex["fixation_map"].max() == 1.0
    assert classes[ex["emotion"]] == labels.loc[sid, "emotion"]
    assert ex["valence"] == pytest.approx(labels.loc[sid, "valence"])
    assert subjects[ex["subject_id"]] == labels.loc[sid, "subject"]
    folds.setdefault(subjects[ex["subject_id"]], set()).add(int(ex["fold"]))
  assert all(len(f) == 1 for f in folds.values())  # subject-grouped
  assert sorted(f.pop() for f in folds.values()) == [1, 2, 3, 4]  # 4 subjects: 4 folds
  meta = info.metadata
  assert meta["labels"][0] == {"name": "emotion", "kind": "class", "classes": classes}
  assert meta["labels"][1] == {"name": "valence", "kind": "regression", "classes": []}
  assert meta["eye_columns"][: schema.WIDTH] == list(schema.FIELDS)
  assert len(meta["eye_mean"]) == len(meta["eye_std"]) == 2 * schema.WIDTH
  assert sorted(set(meta["formats"].values())) == ["gazepoint", "tobii"]
  assert meta["folds"] == "subject-grouped"


def test_a_changed_study_is_not_taken_for_its_earlier_build(study, tmp_path):
  data_dir = tmp_path / "data"
  build.build_study(study, data_dir, face_frames=2, workers=1)
  with pytest.raises(layout.StudyError, match="--face_frames changed"):
    build.build_study(study, data_dir, face_frames=3, workers=1)
  assert build.build_study(study, data_dir, face_frames=2).info.splits["train"].num_examples == 16
  labels = pd.read_csv(study / "labels.csv")
  labels.iloc[2:].to_csv(study / "labels.csv", index=False)
  with pytest.raises(layout.StudyError, match="(?s)as it was before.*mv "):
    build.build_study(study, data_dir, face_frames=2, workers=1)


def _labels(root) -> pd.DataFrame:
  return pd.read_csv(root / "labels.csv", dtype=str)


def _first_eye(root, suffix) -> pathlib.Path:
  return sorted((root / "eye").glob(f"*{suffix}"))[0]


def _drop_eye(root):
  path = _first_eye(root, ".tsv")
  path.unlink()
  return path.stem, "no eye file"


def _drop_face(root):
  path = sorted((root / "frames").iterdir())[0]
  shutil.rmtree(path)
  return path.name, "no face video or frames"


def _eye_without_rows(root):
  path = _first_eye(root, ".csv")
  path.write_text(path.read_text().splitlines()[0] + "\n")  # the header only
  return path.stem, str(path)


def _unknown_format(root):
  path = _first_eye(root, ".tsv")
  path.unlink()
  (root / "eye" / f"{path.stem}.txt").write_text("when,where\n1,2\n")
  return path.stem, "not a recording of any known eye-tracker format; tried"


def _single_class(root):
  table = _labels(root)
  table["group"] = "control"
  table.to_csv(root / "labels.csv", index=False)
  return None, "label column 'group': a single class 'control'"


def _split_subject(root):
  table = _labels(root)
  table.insert(2, "fold", [str(1 + i % 2) for i in range(len(table))])
  table.to_csv(root / "labels.csv", index=False)
  return table["subject"][0], f"subject {table['subject'][0]} is split across folds [1, 2]"


def _duplicate_id(root):
  table = _labels(root)
  table.loc[1, "id"] = table["id"][0]
  table.to_csv(root / "labels.csv", index=False)
  return table["id"][0], f"duplicate id {table['id'][0]}"


DEFECTS = {
  "missing eye file": _drop_eye,
  "missing face clip": _drop_face,
  "eye file without rows": _eye_without_rows,
  "unknown eye format": _unknown_format,
  "single-class label": _single_class,
  "subject split across folds": _split_subject,
  "duplicate id": _duplicate_id,
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_named_and_a_failed_build_leaves_nothing(small, tmp_path, defect):
  name, message = DEFECTS[defect](small)
  report = validate_study(small)
  assert not report.ok
  hits = [p for p in report.problems if message in p]
  assert hits, report.problems
  if name is not None:
    assert name in hits[0]
  assert report.text().splitlines()[-1].startswith("FAILED: ")
  data_dir = tmp_path / "data"
  with pytest.raises(layout.StudyError) as info:
    build.build_study(small, data_dir, workers=1)
  assert any(message in p for p in info.value.problems)
  assert not data_dir.exists() or not [p for p in data_dir.rglob("*") if p.is_file()]


def test_warnings_name_a_duration_gap_and_files_without_labels(small):
  eye = _first_eye(small, ".csv")
  lines = eye.read_text().splitlines()
  eye.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # half the eye data
  (small / "eye" / "stray.csv").write_text(lines[0] + "\n")
  report = validate_study(small)
  assert report.ok, report.problems
  assert any(eye.stem in w and "the example keeps the first" in w for w in report.warnings)
  assert any("stray.csv: not in labels.csv" in w for w in report.warnings)


def test_the_validate_command_exits_1_naming_the_defect(small):
  (small / "labels.csv").write_text("id,subject,mood\na,s1,calm\n")
  run = subprocess.run(
    [sys.executable, "-m", "tfds_emer.validate", f"--study={small}"],
    capture_output=True,
    text=True,
    cwd=pathlib.Path(__file__).parents[1],
  )
  assert run.returncode == 1
  assert "label column 'mood': a single class 'calm'" in run.stdout
  assert run.stdout.splitlines()[-1].startswith("FAILED: ")


def test_folds_are_made_per_subject_deterministically():
  counts = {"a": 3, "b": 3, "c": 2, "d": 1, "e": 1, "f": 1, "g": 1}
  folds = layout.subject_folds(counts)
  assert folds == layout.subject_folds(dict(reversed(counts.items())))
  assert sorted(set(folds.values())) == [1, 2, 3, 4, 5]
  assert layout.subject_folds({"x": 2, "y": 1}) == {"x": 1, "y": 2}


def test_a_study_name_becomes_a_tfds_config_name(tmp_path):
  assert layout.config_name("My study (2026)!") == "My_study_2026"
  assert layout.config_name("ü") == "study"
  (tmp_path / "s").mkdir()
  (tmp_path / "s" / "study.json").write_text(json.dumps({"name": "pilot/v2"}))
  assert layout.read_study(tmp_path / "s", [], []).name == "pilot_v2"


def test_a_file_no_format_recognises_is_read_by_the_column_map_of_study_json(small):
  path = _first_eye(small, ".csv")
  rows = pd.read_csv(path)
  time = [c for c in rows.columns if c.startswith("TIME")][0]
  plain = pd.DataFrame({"t": rows[time], "x": rows["BPOGX"], "y": rows["BPOGY"]})
  path.unlink()
  plain.to_csv(path.with_suffix(".txt"), index=False)
  settings = json.loads((small / "study.json").read_text())
  columns = {"time_ms": "t", "gaze_x": "x", "gaze_y": "y"}
  settings["formats"] = {"generic": {"columns": columns, "time_unit": "s"}}
  (small / "study.json").write_text(json.dumps(settings))
  report = validate_study(small)
  assert report.ok, report.problems
  assert report.formats[path.stem] == "generic"
  assert report.formats[_first_eye(small, ".tsv").stem] == "tobii"
