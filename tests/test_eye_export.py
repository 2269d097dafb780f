"""Eye exports as Tobii Pro Lab writes them → the model's 39 columns; each defect named."""

import datetime
import json
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from tfds_emer import emer, eye_export, release
from tfds_emer import release_layout as layout
from tfds_emer.fake_release import SCALES, as_written, eye_table, write_eye, write_release
from tfds_emer.release import ReleaseError
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim
from tfds_emer.validate import validate


@pytest.fixture(scope="module")
def rows():
  """One sample's raw rows as a Pro Lab export holds them (whole μs)."""
  cfg = SimConfig(seed=2, num_subjects=1, num_samples=1, clip_seconds=(3.0, 3.0), p_tracking_loss=1)
  sim = EmerSim(cfg)
  return as_written(sim.sample(0, 2).eye, "prolab")


VARIANTS = {
  "plain.tsv": ("plain", "."),
  "plain.csv": ("plain", "."),
  "plain_decimal_comma.csv": ("plain", ","),  # `;`-separated
  "prolab.tsv": ("prolab", "."),
  "prolab_decimal_comma.tsv": ("prolab", ","),
  "prolab_decimal_comma.csv": ("prolab", ","),
  "prolab.csv": ("prolab", "."),
  "prolab.xlsx": ("prolab", "."),
  "plain.xlsx": ("plain", "."),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_export_variants_give_the_same_39_columns(rows, tmp_path, variant):
  style, decimal = VARIANTS[variant]
  path = tmp_path / variant
  table = eye_table("1_film_sad", 1, rows, style)
  write_eye(path, table, decimal=decimal)
  got = release.read_eye(path, {})
  assert isinstance(got, release.EyeExport)
  assert got.columns == eye_export.COLUMNS and got.gaze_cols == (2, 3)
  # NaN where the export is empty; xlsx keeps 16 significant digits, text exports all 17.
  exact = 0 if path.suffix != ".xlsx" else 1e-15
  np.testing.assert_allclose(got.values, rows, rtol=exact, atol=0)
  np.testing.assert_array_equal(got.timestamps_ms, rows[:, 0])
  assert set(got.dropped) == {"Participant name", "Recording name", "Sensor"}
  if style == "prolab":  # text columns and other sensors' rows were there to convert or drop
    assert (table["Sensor"] == "Mouse").any() and table["Validity left"].isin(["Invalid"]).any()
    assert "Eye movement type" in got.headers and "Recording timestamp [μs]" in got.headers


def test_xlsx_falls_back_to_openpyxl(rows, tmp_path, monkeypatch):
  path = tmp_path / "e.xlsx"
  write_eye(path, eye_table("1_film_sad", 1, rows))
  monkeypatch.setitem(sys.modules, "python_calamine", None)  # `import python_calamine` fails
  with pytest.raises(ImportError):
    eye_export._calamine_table(path)
  np.testing.assert_allclose(release.read_eye(path, {}).values, rows, rtol=1e-15, atol=0)


def test_calamine_table_reads_as_pandas_does(rows, tmp_path):
  """Repeated, empty and numeric headers, a blank row, text and empty cells: as pandas reads them."""
  table = eye_table("1_film_sad", 1, rows[:20]).astype(object)
  table.columns = [*table.columns[:-3], "Gaze point X [DACS px]", "", 5]
  table.iloc[4] = None  # a blank row
  path = tmp_path / "e.xlsx"
  write_eye(path, table)
  expected = pd.read_excel(path, engine="calamine")
  expected.columns = expected.columns.map(str)  # headers are read as text
  got = eye_export._calamine_table(path)
  pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_index_type=False)


def _broken(tmp_path, rows, edit, suffix=".tsv"):
  table = eye_table("1_film_sad", 1, rows)
  path = tmp_path / f"e{suffix}"
  write_eye(path, edit(table))
  with pytest.raises(ReleaseError) as info:
    release.read_eye(path, {})
  (problem,) = info.value.problems
  return path, problem


def _cell(column, value, row=3):
  def edit(table):
    table[column] = table[column].astype(object)
    table.loc[row, column] = value
    return table

  return edit


def test_missing_gaze_column(rows, tmp_path):
  path, problem = _broken(tmp_path, rows, lambda t: t.drop(columns="Gaze point Y [DACS px]"))
  assert problem.startswith(f"{path}: no gaze columns; expected 'Gaze point X' or")
  assert "'Gaze point Y [DACS px]'" in problem


def test_missing_model_columns_are_named(rows, tmp_path):
  drop = ["Pupil diameter right [mm]", "Eye movement type"]
  path, problem = _broken(tmp_path, rows, lambda t: t.drop(columns=drop))
  assert problem.startswith(f"{path}: missing column(s) the model needs: 'Pupil diameter right'")
  assert "'Eye movement type code' ('Eye movement type')" in problem


def test_text_cell_names_file_column_row_and_value(rows, tmp_path):
  path, problem = _broken(tmp_path, rows, _cell("Pupil diameter left [mm]", "3,1 mm"))
  # Header row 1, first data row 2; the 'Mouse' row written before index 3 counts too.
  assert problem.startswith(f"{path}: column 'Pupil diameter left [mm]' row 5: '3,1 mm'")
  assert "is not a number" in problem


def test_unknown_text_code_is_named(rows, tmp_path):
  path, problem = _broken(tmp_path, rows, _cell("Validity right", "Maybe"), ".xlsx")
  assert f"{path}: column 'Validity right' row 5: 'Maybe' is not a number or one of" in problem
  assert "['Valid', 'Invalid']" in problem


@pytest.mark.parametrize("value", [1e308, "inf", -1e39])
def test_cell_beyond_float32_names_file_column_row(rows, tmp_path, value):
  path, problem = _broken(tmp_path, rows, _cell("Gaze point left X [DACS mm]", value))
  assert problem.startswith(f"{path}: column 'Gaze point left X [DACS mm]' row 5: ")
  assert "is beyond float32" in problem


def test_unreadable_file(tmp_path):
  path = tmp_path / "e.xlsx"
  path.write_bytes(b"PK\x03\x04 not really a workbook")
  with pytest.raises(ReleaseError, match=rf"{path}: unreadable eye export \("):
    release.read_eye(path, {})


def test_no_eye_tracker_rows(rows, tmp_path):
  path, problem = _broken(tmp_path, rows, lambda t: t.assign(Sensor="Mouse"))
  assert problem == (
    f"{path}: no row of the eye tracker; column 'Sensor' holds ['Mouse'], expected 'Eye Tracker'."
  )


def test_ci_scale_release_builds_into_its_manifest(tmp_path):
  scale = SCALES["ci"]
  release_dir, data_dir = tmp_path / "release", tmp_path / "data"
  write_release(
    release_dir, scale.sim, frames_per_clip=scale.frames_per_clip, workers=1, progress=False
  )
  manifest = json.loads((release_dir / "manifest.json").read_text())["samples"]
  builder = emer.Emer(
    config=emer.EmerConfig(name="real_ci", face_frames=4), data_dir=str(data_dir), workers=2
  )
  builder.download_and_prepare(
    file_format="array_record",
    download_config=tfds.download.DownloadConfig(manual_dir=str(release_dir)),
  )
  source = builder.as_data_source(split="train")
  built = {source[i]["sample_id"].decode(): source[i] for i in range(len(source))}
  assert sorted(built) == sorted(e["sample_id"] for e in manifest)
  assert len(manifest) == scale.sim.num_samples
  assert (release_dir / layout.EYE_DIR / f"{manifest[0]['sample_id']}.xlsx").exists()
  for want in manifest:
    got = built[want["sample_id"]]
    for key in ("subject_id", "fold", "er_emotion", "er_polarity", "fer_emotion", "fer_polarity"):
      assert got[key] == want[key], (want["sample_id"], key)
    for key in ("er_valence", "er_arousal", "fer_valence", "fer_arousal", "fer_intensity"):
      assert got[key] == np.float32(want[key]), (want["sample_id"], key)
    assert got["eye"].shape == (want["eye_rows"], eye_export.NUM_COLUMNS)
    np.testing.assert_allclose(
      got["eye"].astype(np.float64).sum(0), want["eye_column_sums"], rtol=1e-6, atol=1e-6
    )
    assert got["face"].shape == (4, 112, 112, 3)


# --- the authors' rule: every numeric column, in sheet order ---------------------------------

# Headers the named mapping does not know; the clock, gaze and type index keep their names.
UNFAMILIAR = {
  "Eyetracker timestamp [μs]": "Device time stamp",
  "Pupil diameter left [mm]": "Pupil L",
  "Validity right": "Right eye ok",
  "Eye movement type": "Movement",
  "Eye movement event duration [ms]": "Event length",
}


def _sheet_order_cells(path, decimal=".") -> np.ndarray:
  """The numeric cells of an export as the authors' code reads them, written out by hand."""
  table = pd.read_csv(path, sep="\t", decimal=decimal)
  table = table[table["Sensor"] == "Eye Tracker"].drop(columns=list(_TEXT_COLUMNS))
  codes = {**eye_export.VALIDITY_CODES, **eye_export.MOVEMENT_CODES}
  return table.replace(codes).to_numpy(np.float64)


_TEXT_COLUMNS = ("Participant name", "Recording name", "Sensor")


def test_unfamiliar_headers_are_read_in_sheet_order(rows, tmp_path):
  path = tmp_path / "e.tsv"
  write_eye(path, eye_table("1_film_sad", 1, rows).rename(columns=UNFAMILIAR), decimal=",")
  got = release.read_eye(path, {})
  assert got.rule == "sheet order" and got.gaze_cols == (2, 3)
  assert got.headers[1] == "Device time stamp" and got.misplaced() == []
  np.testing.assert_array_equal(got.values, _sheet_order_cells(path, ","))
  # Cells as they are: the recording clock stays in μs; the clock in ms is found by name.
  np.testing.assert_array_equal(got.values[:, 0], rows[:, 0] * 1000)
  np.testing.assert_array_equal(got.timestamps_ms, rows[:, 0])
  np.testing.assert_array_equal(got.values[:, 1:], rows[:, 1:])
  assert set(got.dropped) == set(_TEXT_COLUMNS)
  assert got.column("Pupil diameter left") is None
  np.testing.assert_array_equal(got.column("Eye movement type index"), rows[:, 36])


def test_neither_rule_names_the_file_columns_and_both_rules(rows, tmp_path):
  table = eye_table("1_film_sad", 1, rows).rename(columns=UNFAMILIAR)
  path, problem = _broken(tmp_path, rows, lambda t: table.assign(**{"Computer timestamp": 7}))
  assert problem.startswith(f"{path}: missing column(s) the model needs: 'Eyetracker timestamp'")
  assert "Nor does the authors' rule apply (every numeric column, in sheet order)" in problem
  assert "found 40: ['Recording timestamp [μs]', 'Device time stamp'," in problem
  assert "'Computer timestamp']" in problem and "'eye_columns' in the mapping file" in problem


def test_sheet_order_names_known_columns_out_of_place(rows, tmp_path):
  table = eye_table("1_film_sad", 1, rows).rename(columns=UNFAMILIAR)
  order = list(table.columns)
  i, j = order.index("Pupil diameter right [mm]"), order.index("Validity left")
  order[i], order[j] = order[j], order[i]
  table.insert(0, "Recording date", datetime.datetime(2024, 5, 6))  # a date is not a number
  path = tmp_path / "e.xlsx"
  write_eye(path, table[["Recording date", *order]])
  got = release.read_eye(path, {})
  assert got.rule == "sheet order" and "Recording date" in got.dropped
  assert got.misplaced() == [
    "'Validity left' is column 16, where the model reads 'Pupil diameter right'",
    "'Pupil diameter right [mm]' is column 17, where the model reads 'Validity left'",
  ]


@pytest.fixture(scope="module")
def renamed_release(tmp_path_factory):
  """A Pro Lab-style release; two of its three exports with headers the names do not map."""
  root = tmp_path_factory.mktemp("renamed")
  sim = write_release(
    root,
    SimConfig(seed=5, num_subjects=1, num_samples=3, clip_seconds=(2.0, 2.0)),
    frames_per_clip=4,
    eye_format="tsv",
    progress=False,
  )
  ids = [s.sample_id for s in sim.samples]
  for sid in ids[1:]:
    path = root / layout.EYE_DIR / f"{sid}.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.rename(columns=UNFAMILIAR).to_csv(path, sep="\t", index=False)
  return root, ids


def test_release_in_sheet_order_validates_and_builds(renamed_release, tmp_path):
  root, ids = renamed_release
  report = validate(root, face_frames=4)
  assert report.ok, report.problems
  info = report.information()
  assert "eye exports: 1 by header name, 2 in sheet order (the authors' rule)" in info
  eye = root / layout.EYE_DIR
  for sid in ids[1:]:
    line = f"{eye / sid}.tsv: in sheet order (the authors' rule): 39 numeric columns, "
    assert any(x.startswith(line) for x in info), info
  assert [w for w in report.warnings if "eye exports are read by different rules" in w]
  builder = emer.Emer(
    config=emer.EmerConfig(name="real_test", face_frames=4), data_dir=str(tmp_path)
  )
  builder.download_and_prepare(
    file_format="array_record",
    download_config=tfds.download.DownloadConfig(manual_dir=str(root)),
  )
  source = builder.as_data_source(split="train")
  built = {source[i]["sample_id"].decode(): source[i]["eye"] for i in range(len(source))}
  named = release.read_eye(eye / f"{ids[0]}.tsv", {}).values
  np.testing.assert_array_equal(built[ids[0]], eye_export.fill_invalid(named))
  for sid in ids[1:]:
    cells = _sheet_order_cells(eye / f"{sid}.tsv")
    np.testing.assert_array_equal(built[sid], eye_export.fill_invalid(cells))
