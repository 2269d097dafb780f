"""The Tobii Pro Lab reader of the tracker registry: detection, and the schema's values against
the numbers written into the export."""

import numpy as np
import pandas as pd
import pytest

from tfds_emer import eye_export
from tfds_emer.fake_release import as_written, eye_table, write_eye
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim
from tfds_emer.trackers import registry, schema, tobii

C = {name: j for j, name in enumerate(eye_export.COLUMNS)}


@pytest.fixture(scope="module")
def rows():
  """Raw rows at 50 Hz with an EyesNotFound stretch of 200 ms (a blink) and one of 800 ms."""
  cfg = SimConfig(seed=2, num_subjects=1, num_samples=1, clip_seconds=(3.0, 3.0))
  rows = as_written(EmerSim(cfg).sample(0, 2).eye, "prolab")
  assert np.allclose(np.diff(rows[:, 0]), 20.0)
  rows[:, C["Eye movement type code"]] = np.where(
    rows[:, C["Eye movement type code"]] == eye_export.EYES_NOT_FOUND,
    eye_export.UNCLASSIFIED,
    rows[:, C["Eye movement type code"]],
  )
  for start, stop in ((10, 20), (50, 90)):
    rows[start:stop, C["Eye movement type code"]] = eye_export.EYES_NOT_FOUND
    rows[start:stop, [C["Validity left"], C["Validity right"]]] = 0
  return rows


def _expected(rows, screen=(1920, 1080)) -> np.ndarray:
  """The schema's values, worked out from the written numbers."""
  ok_l, ok_r = rows[:, C["Validity left"]] > 0, rows[:, C["Validity right"]] > 0
  gone = ~ok_l & ~ok_r
  code = rows[:, C["Eye movement type code"]]
  event = np.select([code == 1, code == 2], [schema.FIXATION, schema.SACCADE], schema.UNKNOWN)
  event[10:20] = schema.BLINK  # 200 ms; 50:90 lasts 800 ms: UNKNOWN
  out = np.column_stack(
    [
      rows[:, 0] - rows[0, 0],
      np.where(gone, np.nan, rows[:, C["Gaze point X (MCSnorm)"]]),
      np.where(gone, np.nan, rows[:, C["Gaze point Y (MCSnorm)"]]),
      np.where(ok_l, rows[:, C["Pupil diameter left"]], np.nan),
      np.where(ok_r, rows[:, C["Pupil diameter right"]], np.nan),
      ok_l,
      ok_r,
      event,
      rows[:, C["Gaze event duration"]],
      rows[:, C["Fixation point X"]] / screen[0],
      rows[:, C["Fixation point Y"]] / screen[1],
    ]
  )
  return out.astype(np.float64)


VARIANTS = {  # name: (header style, decimal mark)
  "prolab.tsv": ("prolab", "."),
  "prolab.xlsx": ("prolab", "."),
  "prolab_decimal_comma.csv": ("prolab", ","),
  "plain.tsv": ("plain", "."),
  "plain_decimal_comma.csv": ("plain", ","),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_both_header_styles_give_the_written_numbers(rows, tmp_path, variant):
  style, decimal = VARIANTS[variant]
  path = tmp_path / variant
  table = eye_table("1_film_sad", 1, rows, style)
  write_eye(path, table, decimal=decimal)
  if style == "prolab":  # Pro Lab's text codes and another sensor's rows were written
    assert (table["Sensor"] == "Mouse").any() and (
      table["Eye movement type"] == "EyesNotFound"
    ).any()
  assert tobii.detect(path) and registry.detect(path).name == "tobii"
  got = registry.read(path)
  assert got.format == "tobii" and got.source == str(path) and got.rows == len(rows)
  assert got.units["gaze"] == "MCS norm" and got.units["pupil"] == "mm" and got.notes == ()
  exact = 1e-15 if path.suffix == ".xlsx" else 0
  np.testing.assert_allclose(got.values, _expected(rows), rtol=exact, atol=1e-12)
  np.testing.assert_allclose(got.reference, rows, rtol=exact, atol=0)
  assert got.rate_hz == pytest.approx(50.0) and all(got.measured)
  events = got.column("event")
  assert (events[10:20] == schema.BLINK).all() and (events[50:90] == schema.UNKNOWN).all()


def test_gaze_in_pixels_over_the_screen_without_the_normalised_columns(rows, tmp_path):
  table = eye_table("1_film_sad", 1, rows)
  table = table.drop(columns=[h for h in table.columns if "[MCS norm]" in h])
  path = tmp_path / "e.tsv"
  write_eye(path, table)
  got = tobii.read(path, {"screen_px": (1280, 1024)})
  want = _expected(rows, (1280, 1024))
  gone = np.isnan(want[:, schema.INDEX["gaze_x"]])
  want[:, schema.INDEX["gaze_x"]] = np.where(gone, np.nan, rows[:, C["Gaze point X"]] / 1280)
  want[:, schema.INDEX["gaze_y"]] = np.where(gone, np.nan, rows[:, C["Gaze point Y"]] / 1024)
  np.testing.assert_allclose(got.values, want, rtol=0, atol=1e-12)
  assert got.units["gaze"] == "px / 1280×1024" and got.reference is None
  assert "columns not in the export: ['Gaze point X (MCSnorm)'," in got.notes[0]


def test_an_export_in_sheet_order_keeps_its_39_columns_as_reference(rows, tmp_path):
  table = eye_table("1_film_sad", 1, rows).rename(
    columns={"Eyetracker timestamp [μs]": "Device time", "Pupil diameter left [mm]": "Pupil L"}
  )
  path = tmp_path / "e.xlsx"
  write_eye(path, table)
  got = registry.read(path, "tobii")
  assert got.notes == ("read in sheet order (the authors' rule): fields found by header name",)
  want = rows.copy()
  want[:, 0] *= 1000  # the cells as they are: μs
  np.testing.assert_allclose(got.reference, want, rtol=1e-15, atol=0)
  expected = _expected(rows)
  expected[:, schema.INDEX["pupil_left"]] = np.nan  # no header names it
  np.testing.assert_allclose(got.values, expected, rtol=1e-15, atol=1e-12)


def test_other_trackers_files_are_not_tobii(tmp_path):
  samples = {
    "generic.csv": "time,x,y,pupil\n0,0.5,0.5,3.1\n",
    "pupil_labs_gaze.csv": "section id,recording id,timestamp [ns],gaze x [px],gaze y [px]\n",
    "imotions.csv": "Row,Timestamp,SlideEvent,ET_GazeLeftx,ET_GazeLefty,Gaze X,Gaze Y\n",
    "only_gaze.tsv": "Gaze point X\tGaze point Y\n1\t2\n",
    "notes.txt": "Recording timestamp, Gaze point X and Gaze point Y are Pro Lab's\n",
    "broken.xlsx": "not a workbook",
    "gaze.asc": "Recording timestamp\tGaze point X\tGaze point Y\tSensor\n",
  }
  for name, text in samples.items():
    (tmp_path / name).write_text(text)
    assert not tobii.detect(tmp_path / name), name
  assert not tobii.detect(tmp_path)  # a folder


def test_unreadable_export_names_the_file(tmp_path):
  path = tmp_path / "e.tsv"
  pd.DataFrame({"Recording timestamp": [0, 1], "Sensor": ["Mouse", "Mouse"]}).to_csv(
    path, sep="\t", index=False
  )
  with pytest.raises(schema.RecordingError, match=rf"^{path}: no row of the eye tracker"):
    tobii.read(path, {})
