"""The generic reader: any table through a column map; optional I-VT events (pymovements)."""

import sys

import numpy as np
import pytest

from tfds_emer.trackers import generic, registry
from tfds_emer.trackers.schema import BLINK, FIXATION, SACCADE, UNKNOWN, RecordingError

NAN = np.nan
# A lab's own logger: semicolons, decimal commas, seconds, pixels, -1 for lost eyes, text
# validity and one-letter event codes.
TABLE = """\
t;x;y;pl;pr;vl;vr;kind;dur
10,000;480;270;3,25;3,5;ok;ok;F;0,12
10,004;490;280;3,25;-1;ok;lost;F;0,12
10,008;-1;-1;-1;-1;lost;lost;B;0,004
10,012;960;540;3;3,125;ok;ok;S;0,002
10,016;;;;;;;;
"""
OPTIONS = {
  "columns": {
    "time_ms": "t",
    "gaze_x": "x",
    "gaze_y": "y",
    "pupil_left": "pl",
    "pupil_right": "pr",
    "valid_left": "vl",
    "valid_right": "vr",
    "event": "kind",
    "event_duration_ms": "dur",
  },
  "time_unit": "s",
  "gaze_unit": "px",
  "screen_px": [960, 540],
  "missing": [-1],
  "valid_codes": {"ok": 1, "lost": 0},
  "event_codes": {"F": "fixation", "S": "saccade", "B": "blink"},
}


@pytest.fixture
def table(tmp_path):
  path = tmp_path / "lab.csv"
  path.write_text(TABLE)
  return path


def test_column_map_reads_every_field(table):
  assert not generic.detect(table)
  rec = registry.read(table, options=OPTIONS)  # the column map chooses the generic reader
  assert rec.format == "generic" and rec.units == {"pupil": "mm"}
  np.testing.assert_allclose(rec.column("time_ms"), [0, 4, 8, 12, 16], atol=1e-9)
  np.testing.assert_allclose(rec.column("gaze_x"), [0.5, 490 / 960, NAN, 1.0, NAN])
  np.testing.assert_allclose(rec.column("gaze_y"), [0.5, 280 / 540, NAN, 1.0, NAN])
  np.testing.assert_allclose(rec.column("pupil_left"), [3.25, 3.25, NAN, 3.0, NAN])
  np.testing.assert_allclose(rec.column("pupil_right"), [3.5, NAN, NAN, 3.125, NAN])
  np.testing.assert_allclose(rec.column("valid_left"), [1, 1, 0, 1, NAN])
  np.testing.assert_allclose(rec.column("valid_right"), [1, 0, 0, 1, NAN])
  np.testing.assert_allclose(rec.column("event"), [FIXATION, FIXATION, BLINK, SACCADE, NAN])
  np.testing.assert_allclose(rec.column("event_duration_ms"), [120, 120, 4, 2, NAN], atol=1e-9)
  assert np.isnan(rec.column("fixation_x")).all()
  assert rec.measured == (True,) * 7 + (True, True, False, False)


def test_fractions_and_milliseconds_by_default(tmp_path):
  path = tmp_path / "plain.tsv"
  path.write_text("ms\tgx\tgy\tev\n5\t0.25\t0.5\tfixation\n7.5\t0.3\t0.5\tUnknown\n")
  cols = {"time_ms": "ms", "gaze_x": "gx", "gaze_y": "gy", "event": "ev"}
  rec = registry.read(path, "generic", {"columns": cols})
  np.testing.assert_allclose(rec.column("time_ms"), [0, 2.5])
  np.testing.assert_allclose(rec.column("gaze_x"), [0.25, 0.3])
  np.testing.assert_array_equal(rec.column("event"), [FIXATION, UNKNOWN])


def test_missing_column_names_file_column_and_headers(table):
  options = {**OPTIONS, "columns": {**OPTIONS["columns"], "gaze_y": "Y"}}
  with pytest.raises(
    RecordingError, match=r"lab\.csv: column 'Y' \(mapped to gaze_y\) not found; headers: \['t'"
  ):
    registry.read(table, options=options)


def test_bad_maps_and_cells(table):
  with pytest.raises(RecordingError, match=r"lab\.csv: column map: unknown field\(s\) \['gaze'\]"):
    generic.read(table, {"columns": {"time_ms": "t", "gaze": "x", "gaze_y": "y"}})
  with pytest.raises(RecordingError, match=r"lab\.csv: gaze_unit 'px' needs \"screen_px\""):
    generic.read(table, {k: v for k, v in OPTIONS.items() if k != "screen_px"})
  codes = {"F": "fixation", "S": "saccade"}
  with pytest.raises(RecordingError, match=r"lab\.csv: column 'kind' row 4: event 'B'"):
    generic.read(table, {**OPTIONS, "event_codes": codes})
  with pytest.raises(RecordingError, match=r"lab\.csv: column 'vl' row 2: 'ok' is not"):
    generic.read(table, {k: v for k, v in OPTIONS.items() if k != "valid_codes"})


def test_never_detected(table):
  with pytest.raises(registry.UnknownFormat, match=r"lab\.csv: .*tried.*generic"):
    registry.read(table)


def test_ivt_events_from_pymovements(tmp_path):
  pytest.importorskip("pymovements")
  # 100 Hz: 30 rows still at (0.25, 0.5), a 3-row jump, 30 rows still at (0.75, 0.5); a
  # 1000 px (50 cm) wide screen 60 cm away: the jump is ~22° in 40 ms, far above 20 °/s.
  x = np.concatenate([np.full(30, 0.25), [0.375, 0.5, 0.625], np.full(30, 0.75)])
  t = np.arange(len(x)) * 10.0
  lines = ["t,x,y"] + [f"{a},{b},0.5" for a, b in zip(t, x, strict=True)]
  path = tmp_path / "still.csv"
  path.write_text("\n".join(lines) + "\n")
  options = {
    "columns": {"time_ms": "t", "gaze_x": "x", "gaze_y": "y"},
    "detect_events": "ivt",
    "screen_px": [1000, 500],
    "screen_cm": [50, 25],
    "distance_cm": 60,
  }
  rec = registry.read(path, options=options)
  event = rec.column("event")
  assert (event[:29] == FIXATION).all() and (event[-29:] == FIXATION).all()
  assert (event[30:33] == SACCADE).all()
  np.testing.assert_allclose(rec.column("fixation_x")[:29], 0.25)
  np.testing.assert_allclose(rec.column("fixation_x")[-29:], 0.75)
  assert rec.notes == ("events detected by pymovements (ivt)",)
  with pytest.raises(RecordingError, match=r"still\.csv: detect_events 'ivt' needs distance_cm"):
    registry.read(path, options={k: v for k, v in options.items() if k != "distance_cm"})


def test_column_map_overrides_detection(tmp_path):
  path = tmp_path / "gp.csv"  # a Gazepoint file, read through a map of two of its columns
  path.write_text(
    "TIME,FPOGX,FPOGY,FPOGV,BPOGX,BPOGY\n1.5,0.1,0.2,1,0.3,0.4\n1.6,0.1,0.2,1,0.5,0.6\n"
  )
  assert registry.detect(path).name == "gazepoint"
  cols = {"time_ms": "TIME", "gaze_x": "FPOGX", "gaze_y": "FPOGY"}
  rec = registry.read(path, options={"columns": cols, "time_unit": "s"})
  assert rec.format == "generic"
  np.testing.assert_allclose(rec.column("time_ms"), [0, 100], atol=1e-9)
  np.testing.assert_allclose(rec.column("gaze_x"), [0.1, 0.1])
  assert registry.read(path).format == "gazepoint"


def test_ivt_without_pymovements_says_what_to_install(table, monkeypatch):
  for name in ("pymovements", "pymovements.events", "pymovements.transforms.numpy"):
    monkeypatch.setitem(sys.modules, name, None)
  options = {**OPTIONS, "columns": {"time_ms": "t", "gaze_x": "x", "gaze_y": "y"}}
  options |= {"detect_events": "ivt", "screen_cm": [50, 28], "distance_cm": 60}
  with pytest.raises(RecordingError, match=r"lab\.csv: .*needs pymovements: pip install"):
    registry.read(table, options=options)
  with pytest.raises(RecordingError, match=r"lab\.csv: detect_events 'idt': expected one of"):
    registry.read(table, options={**options, "detect_events": "idt"})
