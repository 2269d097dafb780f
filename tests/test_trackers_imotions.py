"""iMotions sensor exports: both column generations, interleaved sensors, metadata lines."""

import numpy as np
import pytest

from tfds_emer.trackers import imotions, registry
from tfds_emer.trackers.schema import BLINK, FIXATION, SACCADE, RecordingError

SCREEN = [1000, 500]
NAN = np.nan

# iMotions 9/10: comma CSV, #-metadata (with a #METADATA/#DATA block), ET_ columns from the
# eye tracker and the gaze analysis' results (Gaze X, Fixation ...) on rows of their own at the
# same Timestamp, AFFDEX and Shimmer rows in between.
HEADER_NEW = (
  "Row,Timestamp,EventSource,SourceStimuliName,ET_GazeLeftx,ET_GazeLefty,ET_GazeRightx,"
  "ET_GazeRighty,ET_PupilLeft,ET_PupilRight,ET_ValidityLeft,ET_ValidityRight,Gaze X,Gaze Y,"
  "Fixation Index,Fixation X,Fixation Y,Fixation Duration,Saccade Index,Saccade Duration,Anger,"
  "GSR Conductance CAL"
)
ROWS_NEW = [
  "1,1000.0,Eyetracker Tobii X3-120,Page1,100,50,300,150,3.0,3.2,0,0,,,,,,,,,,",
  "2,1000.0,R Analysis GazeAnalysis I-VT filter,Page1,,,,,,,,,200,100,1,210,110,50,,,,",
  "3,1005.0,AFFDEX,Page1,,,,,,,,,,,,,,,,,0.5,",
  "4,1008.5,Eyetracker Tobii X3-120,Page1,110,60,-1,-1,3.1,-1,0,4,,,,,,,,,,",
  "5,1008.5,R Analysis GazeAnalysis I-VT filter,Page1,,,,,,,,,,,1,210,110,50,,,,",
  "6,1010.0,Shimmer GSR,Page1,,,,,,,,,,,,,,,,,,2.5",
  "7,1016.75,Eyetracker Tobii X3-120,Page1,-1,-1,-1,-1,-1,-1,4,4,,,,,,,,,,",
  "8,1016.75,R Analysis GazeAnalysis I-VT filter,Page1,,,,,,,,,,,,,,,1,8.25,,",
]
META_NEW = [
  "#INFO,,",
  "#Study name,Reading",
  "#Respondent Name,P01",
  "#Respondent Gender,FEMALE",
  "#Sensor info,Eyetracker Tobii X3-120,120",
  "#Sensor info,AFFDEX,30",
  "#METADATA,,",
  "#Unit,,ms,,,px,px,px,px,mm,mm",
  "#DATA,,",
]

# iMotions 6/7: tab-separated .txt, no prefix, FixationSeq/SaccadeSeq/Blink with -1 outside
# an event, decimal commas (a German Windows locale), EventSource text per row.
HEADER_OLD = (
  "StudyName\tName\tEventSource\tTimestamp\tFixationSeq\tSaccadeSeq\tBlink\tGazeLeftx\t"
  "GazeLefty\tGazeRightx\tGazeRighty\tPupilLeft\tPupilRight\tValidityLeft\tValidityRight\t"
  "FixationX\tFixationY\tFixationDuration\tJoy"
)
ROWS_OLD = [
  "Reading\tP02\tET\t500\t3\t-1\t-1\t400\t300\t420\t310\t2,5\t2,75\t0\t1\t405\t300\t120\t",
  "Reading\tP02\tAffRAW\t505\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t12,5",
  "Reading\tP02\tET\t508\t-1\t7\t-1\t500\t250\t-1\t-1\t2,6\t-1\t1\t4\t-1\t-1\t-1\t",
  "Reading\tP02\tET\t516\t-1\t-1\t1\t-1\t-1\t-1\t-1\t-1\t-1\t4\t4\t-1\t-1\t-1\t",
  "Reading\tP02\tGSR\t520\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
  "Reading\tP02\tET\t524\t-1\t-1\t1\t-1\t-1\t-1\t-1\t-1\t-1\t4\t4\t-1\t-1\t-1\t",
]
META_OLD = ["#Study name\tReading", "#Respondent Name\tP02"]


def write(path, lines):
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


def columns(rec, *names):
  return np.stack([rec.column(n) for n in names], axis=1)


def test_new_generation_merges_analysis_rows_and_drops_other_sensors(tmp_path):
  path = write(tmp_path / "P01.csv", [*META_NEW, HEADER_NEW, *ROWS_NEW])
  rec = registry.read(path, options={"screen_px": SCREEN})
  assert rec.format == "imotions" and rec.rows == 3
  np.testing.assert_allclose(rec.column("time_ms"), [0.0, 8.5, 16.75])
  np.testing.assert_allclose(
    columns(rec, "gaze_x", "gaze_y"), [[0.2, 0.2], [0.11, 0.12], [NAN, NAN]]
  )
  np.testing.assert_allclose(
    columns(rec, "pupil_left", "pupil_right"), [[3.0, 3.2], [3.1, NAN]] + [[NAN, NAN]]
  )
  np.testing.assert_array_equal(columns(rec, "valid_left", "valid_right"), [[1, 1], [1, 0], [0, 0]])
  np.testing.assert_array_equal(rec.column("event"), [FIXATION, FIXATION, SACCADE])
  np.testing.assert_allclose(rec.column("event_duration_ms"), [50, 50, 8.25])
  np.testing.assert_allclose(
    columns(rec, "fixation_x", "fixation_y"), [[0.21, 0.22], [0.21, 0.22], [NAN, NAN]]
  )
  assert rec.units == {"pupil": "mm"}


def test_old_generation_tab_text_with_decimal_commas(tmp_path):
  path = write(tmp_path / "P02.txt", [*META_OLD, HEADER_OLD, *ROWS_OLD])
  assert registry.detect(path).name == "imotions"
  rec = imotions.read(path, {"screen_px": SCREEN})
  np.testing.assert_allclose(rec.column("time_ms"), [0, 8, 16, 24])
  # Gaze: the mean of the eyes found, in pixels of a 1000 x 500 screen.
  np.testing.assert_allclose(
    columns(rec, "gaze_x", "gaze_y"), [[0.41, 0.61], [0.5, 0.5], [NAN, NAN], [NAN, NAN]]
  )
  np.testing.assert_allclose(
    columns(rec, "pupil_left", "pupil_right"), [[2.5, 2.75], [2.6, NAN], [NAN, NAN], [NAN, NAN]]
  )
  # Tobii codes: 0 and 1 valid, 4 not found.
  np.testing.assert_array_equal(
    columns(rec, "valid_left", "valid_right"), [[1, 1], [1, 0], [0, 0], [0, 0]]
  )
  np.testing.assert_array_equal(rec.column("event"), [FIXATION, SACCADE, BLINK, BLINK])
  # FixationDuration where given; the saccade and the blink from their first to last row.
  np.testing.assert_allclose(rec.column("event_duration_ms"), [120, 0, 8, 8])
  np.testing.assert_allclose(columns(rec, "fixation_x", "fixation_y")[0], [0.405, 0.6])
  assert np.isnan(rec.column("fixation_x")[1:]).all()


def test_screen_size_from_metadata_and_required_for_pixels(tmp_path):
  meta = [*META_NEW[:3], "#Screen resolution,1000 x 500", *META_NEW[3:]]
  rec = registry.read(write(tmp_path / "a.csv", [*meta, HEADER_NEW, *ROWS_NEW]))
  np.testing.assert_allclose(rec.column("gaze_x")[:2], [0.2, 0.11])
  path = write(tmp_path / "b.csv", [*META_NEW, HEADER_NEW, *ROWS_NEW])
  with pytest.raises(RecordingError, match=r"b\.csv: gaze is in pixels.*screen_px"):
    registry.read(path)


def test_old_export_without_metadata_is_detected_by_its_columns(tmp_path):
  path = write(tmp_path / "plain.txt", [HEADER_OLD, *ROWS_OLD])
  assert registry.detect(path).name == "imotions"
  assert registry.read(path, options={"screen_px": SCREEN}).rows == 4


def test_export_with_only_other_sensors_names_them(tmp_path):
  rows = [r for r in ROWS_NEW if "AFFDEX" in r or "Shimmer" in r]
  path = write(tmp_path / "face.csv", [*META_NEW, HEADER_NEW, *rows])
  assert registry.detect(path).name == "imotions"
  with pytest.raises(RecordingError, match=r"face\.csv: no eye-tracker rows.*AFFDEX.*Shimmer GSR"):
    registry.read(path, options={"screen_px": SCREEN})


def test_bad_cell_names_file_column_and_row(tmp_path):
  # 9 metadata lines, the header, then the 4th row: line 14 of the file.
  rows = [*ROWS_NEW[:3], ROWS_NEW[3].replace("3.1", "3.1mm")]
  path = write(tmp_path / "bad.csv", [*META_NEW, HEADER_NEW, *rows])
  with pytest.raises(RecordingError, match=r"bad\.csv: column 'ET_PupilLeft' row 14: '3.1mm'"):
    registry.read(path, options={"screen_px": SCREEN})


def test_unknown_file_names_the_formats_tried(tmp_path):
  path = write(tmp_path / "notes.csv", ["a,b", "1,2"])
  with pytest.raises(registry.UnknownFormat, match=r"notes\.csv: .*imotions.*gazepoint.*generic"):
    registry.detect(path)
