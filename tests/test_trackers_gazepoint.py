"""Gazepoint GP3 CSV: Gazepoint Analysis (`TIME(date)`, pupils in mm) and Control logs."""

import numpy as np
import pytest

from tfds_emer.trackers import gazepoint, registry
from tfds_emer.trackers.schema import BLINK, FIXATION, UNKNOWN, RecordingError

NAN = np.nan

# Gazepoint Analysis all_gaze.csv: two fixations (ids 1, 2), a saccade row between them
# (FPOGV 0), then a blink (BKID 1) whose duration BKDUR arrives on its last row.
ANALYSIS = """\
MEDIA_ID,MEDIA_NAME,CNT,TIME(2024/01/31 10:00:00.000),TIMETICK(f=10000000),FPOGX,FPOGY,FPOGS,FPOGD,FPOGID,FPOGV,BPOGX,BPOGY,BPOGV,CX,CY,CS,USER,LPCX,LPCY,LPD,LPS,LPV,RPCX,RPCY,RPD,RPS,RPV,BKID,BKDUR,BKPMIN,LPMM,LPMMV,RPMM,RPMMV
0,Page1,10,12.5,125000000,0.25,0.75,12.4,0.10,1,1,0.26,0.74,1,0,0,0,,0.4,0.5,22.0,1.0,1,0.6,0.5,23.0,1.0,1,0,0,12,3.50,1,3.75,1
0,Page1,11,12.516,125160000,0.25,0.75,12.4,0.116,1,1,0.24,0.76,1,0,0,0,,0.4,0.5,22.5,1.0,1,0.6,0.5,23.5,1.0,1,0,0,12,3.55,1,3.80,1
0,Page1,12,12.532,125320000,0.26,0.74,12.532,0.0,1,0,0.50,0.50,1,0,0,0,,0.4,0.5,22.0,1.0,1,0.6,0.5,23.0,1.0,0,0,0,12,3.60,1,3.85,0
0,Page1,13,12.548,125480000,0.60,0.40,12.548,0.0,2,1,0.61,0.41,1,0,0,0,,0.4,0.5,21.0,1.0,1,0.6,0.5,22.0,1.0,1,0,0,12,3.40,1,3.70,1
0,Page1,14,12.564,125640000,0.60,0.40,12.548,0.016,2,1,0.59,0.39,1,0,0,0,,0.4,0.5,21.0,1.0,1,0.6,0.5,22.0,1.0,1,0,0,12,3.45,1,3.72,1
0,Page1,15,12.580,125800000,0,0,0,0,2,0,0,0,0,0,0,0,,0,0,0,0,0,0,0,0,0,0,1,0,12,0,0,0,0
0,Page1,16,12.596,125960000,0,0,0,0,2,0,0,0,0,0,0,0,,0,0,0,0,0,0,0,0,0,0,1,0.05,12,0,0,0,0
"""

# Gazepoint Control's log: plain TIME, no pupils in mm (pixels of the eye camera instead).
CONTROL = """\
CNT,TIME,FPOGX,FPOGY,FPOGS,FPOGD,FPOGID,FPOGV,BPOGX,BPOGY,BPOGV,LPD,LPV,RPD,RPV,BKID,BKDUR
1,100.000,0.5,0.5,100.0,0.0,7,1,0.5,0.5,1,20.0,1,21.0,1,0,0
2,100.010,0.5,0.5,100.0,0.01,7,1,0.52,0.48,1,20.5,1,0,0,0,0
"""


def test_analysis_export(tmp_path):
  path = tmp_path / "P01_all_gaze.csv"
  path.write_text(ANALYSIS)
  assert registry.detect(path).name == "gazepoint"
  rec = registry.read(path)
  np.testing.assert_allclose(rec.column("time_ms"), [0, 16, 32, 48, 64, 80, 96], atol=1e-9)
  np.testing.assert_allclose(rec.column("gaze_x"), [0.26, 0.24, 0.5, 0.61, 0.59, NAN, NAN])
  np.testing.assert_allclose(rec.column("gaze_y"), [0.74, 0.76, 0.5, 0.41, 0.39, NAN, NAN])
  assert rec.units == {"pupil": "mm"}
  np.testing.assert_allclose(rec.column("pupil_left"), [3.5, 3.55, 3.6, 3.4, 3.45, NAN, NAN])
  np.testing.assert_allclose(rec.column("pupil_right"), [3.75, 3.8, NAN, 3.7, 3.72, NAN, NAN])
  np.testing.assert_array_equal(rec.column("valid_left"), [1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(rec.column("valid_right"), [1, 1, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(
    rec.column("event"), [FIXATION, FIXATION, UNKNOWN, FIXATION, FIXATION, BLINK, BLINK]
  )
  # A fixation lasts its largest FPOGD, a blink its BKDUR (s → ms).
  np.testing.assert_allclose(
    rec.column("event_duration_ms"), [116, 116, NAN, 16, 16, 50, 50], atol=1e-9
  )
  np.testing.assert_allclose(rec.column("fixation_x"), [0.25, 0.25, NAN, 0.6, 0.6, NAN, NAN])
  np.testing.assert_allclose(rec.column("fixation_y"), [0.75, 0.75, NAN, 0.4, 0.4, NAN, NAN])


def test_control_log_pupils_in_camera_pixels(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text(CONTROL)
  assert registry.detect(path).name == "gazepoint"
  rec = gazepoint.read(path, {})
  assert rec.units == {"pupil": "px"}
  np.testing.assert_allclose(rec.column("time_ms"), [0, 10], atol=1e-9)
  np.testing.assert_allclose(rec.column("pupil_left"), [20.0, 20.5])
  np.testing.assert_allclose(rec.column("pupil_right"), [21.0, NAN])
  np.testing.assert_array_equal(rec.column("event"), [FIXATION, FIXATION])
  np.testing.assert_allclose(rec.column("event_duration_ms"), [10, 10], atol=1e-9)


def test_semicolons_and_decimal_commas(tmp_path):
  path = tmp_path / "de.csv"
  path.write_text(CONTROL.replace(",", ";").replace(".", ","))
  assert registry.detect(path).name == "gazepoint"
  np.testing.assert_allclose(registry.read(path).column("gaze_x"), [0.5, 0.52])


def test_missing_column_and_empty_export(tmp_path):
  path = tmp_path / "cut.csv"
  path.write_text(CONTROL.replace("BPOGX", "XPOGX"))
  assert not gazepoint.detect(path)
  with pytest.raises(RecordingError, match=r"cut\.csv: not a Gazepoint export.*'BPOGX'"):
    gazepoint.read(path, {})
  path = tmp_path / "empty.csv"
  path.write_text(CONTROL.splitlines()[0] + "\n")
  with pytest.raises(RecordingError, match=r"empty\.csv: empty Gazepoint export"):
    registry.read(path)


def test_unknown_file_names_the_formats_tried(tmp_path):
  path = tmp_path / "other.tsv"
  path.write_text("x\ty\n1\t2\n")
  with pytest.raises(registry.UnknownFormat, match=r"other\.tsv: .*tried.*gazepoint \(Gazepoint"):
    registry.read(path)
