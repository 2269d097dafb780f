"""EyeLink ASC files as edf2asc writes them, and EDF files, → the common eye schema."""

import sys

import numpy as np
import pytest

from tfds_emer.trackers import registry
from tfds_emer.trackers.schema import BLINK, FIELDS, FIXATION, SACCADE, UNKNOWN, RecordingError

NAN = np.nan

# Binocular at 500 Hz: the left eye lost from 1010 to 1012 (`.`, pupil 0), both at 1012;
# velocity columns (edf2asc -vel) after the six values; a message between samples.
BINOCULAR = """\
** CONVERTED FROM D:\\data\\sub01.EDF using edfapi 4.2.1 Win32  Jun  1 2023 on Mon Jun  5 2023
** DATE: Mon Jun  5 10:00:00 2023
** TYPE: EDF_FILE BINARY EVENT SAMPLE TAGGED
**
MSG\t1000 DISPLAY_COORDS 0 0 1919 1079
MSG\t1000 RECCFG CR 500 2 1 LR
MSG\t1000 GAZE_COORDS 0.00 0.00 1599.00 899.00
PUPIL\tAREA
EVENTS\tGAZE\tLEFT\tRIGHT\tRATE\t 500.00\tTRACKING\tCR\tFILTER\t2
SAMPLES\tGAZE\tLEFT\tRIGHT\tVEL\tRATE\t 500.00\tTRACKING\tCR\tFILTER\t2
START\t1002 \tLEFT\tRIGHT\tSAMPLES\tEVENTS
SFIX L   1002
SFIX R   1002
1002\t 800.0\t 450.0\t 1000.0\t 820.0\t 470.0\t 1100.0\t  1.0\t -2.0\t  3.0\t  4.0\t.....
1004\t 800.0\t 450.0\t 1000.0\t 820.0\t 470.0\t 1100.0\t  1.0\t -2.0\t  3.0\t  4.0\t.....
MSG\t1005 TRIALID 1
1006\t 804.0\t 454.0\t 1002.0\t 824.0\t 474.0\t 1102.0\t  1.0\t -2.0\t  3.0\t  4.0\t.....
EFIX L   1002\t1006\t6\t  802.0\t  452.0\t   1001
EFIX R   1002\t1006\t6\t  822.0\t  472.0\t   1101
SSACC L  1008
SSACC R  1008
1008\t 900.0\t 500.0\t 990.0\t 920.0\t 520.0\t 1090.0\t  1.0\t -2.0\t  3.0\t  4.0\t.....
SBLINK L 1010
1010\t   .\t   .\t    0.0\t 940.0\t 530.0\t 1080.0\t    .\t    .\t  3.0\t  4.0\t.C...
1012\t   .\t   .\t    0.0\t   .\t   .\t    0.0\t    .\t    .\t    .\t    .\t.C.C.
EBLINK L 1010\t1012\t4
ESACC L  1008\t1014\t8\t  900.0\t  500.0\t 1000.0\t  560.0\t   2.50\t     210
ESACC R  1008\t1008\t2\t  920.0\t  520.0\t  930.0\t  525.0\t   0.10\t      30
1014\t 1000.0\t 560.0\t 980.0\t 1020.0\t 580.0\t 1080.0\t  1.0\t -2.0\t  3.0\t  4.0\t..R..
1016\t 1000.0\t 560.0\t 980.0\t 1020.0\t 580.0\t 1080.0\t  1.0\t -2.0\t  3.0\t  4.0\t.....
END\t1016 \tSAMPLES\tEVENTS\tRES\t  38.00\t  31.00
"""

# Monocular (right eye) at 1000 Hz with pupil diameter, DISPLAY_COORDS only, two blocks.
MONOCULAR = """\
** CONVERTED FROM sub02.edf using edfapi 4.2.1 Linux
MSG\t500 DISPLAY_COORDS 0 0 1023 767
PUPIL\tDIAMETER
EVENTS\tGAZE\tRIGHT\tRATE\t1000.00\tTRACKING\tCR\tFILTER\t2
SAMPLES\tGAZE\tRIGHT\tRATE\t1000.00\tTRACKING\tCR\tFILTER\t2
START\t600 \tRIGHT\tSAMPLES\tEVENTS
600\t 512.0\t 384.0\t 4012.0\t...
601\t 256.0\t 192.0\t 4013.0\t...
602\t   .\t   .\t    0.0\t...
EBLINK R 602\t602\t1
603\t -10.5\t 800.0\t 4020.0\t...
END\t603 \tSAMPLES\tEVENTS\tRES\t  38.00\t  31.00
MSG\t700 TRIAL_RESULT 0
START\t800 \tRIGHT\tSAMPLES\tEVENTS
800\t 1024.0\t 0.0\t 3990.0\t...
801\t 1024.0\t 0.0\t 3991.0\t...
EFIX R   800\t801\t2\t  1024.0\t  0.0\t   3990
END\t801 \tSAMPLES\tEVENTS\tRES\t  38.00\t  31.00
"""


def write(tmp_path, text, name="recording.asc"):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return path


def column(rec, name):
  return rec.column(name).tolist()


def test_binocular_asc_to_the_schema(tmp_path):
  path = write(tmp_path, BINOCULAR, "sub01.txt")  # detected from the content, not the name
  assert registry.detect(path).name == "eyelink_asc"
  rec = registry.read(path)
  assert rec.format == "eyelink_asc" and rec.rows == 8
  assert "area" in rec.units["pupil"] and "arbitrary" in rec.units["pupil"]
  assert column(rec, "time_ms") == [0, 2, 4, 6, 8, 10, 12, 14]
  # GAZE_COORDS (1600x900) wins over DISPLAY_COORDS; gaze is the mean of the eyes found.
  w, h = 1600, 900
  left_x = [800, 800, 804, 900, NAN, NAN, 1000, 1000]
  right_x = [820, 820, 824, 920, 940, NAN, 1020, 1020]
  left_y = [450, 450, 454, 500, NAN, NAN, 560, 560]
  right_y = [470, 470, 474, 520, 530, NAN, 580, 580]
  expect_x = [
    np.nanmean([a / w, b / w]) if b == b else NAN for a, b in zip(left_x, right_x, strict=True)
  ]
  expect_y = [
    np.nanmean([a / h, b / h]) if b == b else NAN for a, b in zip(left_y, right_y, strict=True)
  ]
  np.testing.assert_array_equal(rec.column("gaze_x"), expect_x)
  np.testing.assert_array_equal(rec.column("gaze_y"), expect_y)
  assert rec.column("gaze_x")[4] == 940 / w  # only the right eye found
  np.testing.assert_array_equal(
    rec.column("pupil_left"), [1000, 1000, 1002, 990, NAN, NAN, 980, 980]
  )
  np.testing.assert_array_equal(
    rec.column("pupil_right"), [1100, 1100, 1102, 1090, 1080, NAN, 1080, 1080]
  )
  assert column(rec, "valid_left") == [1, 1, 1, 1, 0, 0, 1, 1]
  assert column(rec, "valid_right") == [1, 1, 1, 1, 1, 0, 1, 1]
  # The right eye is found on more rows, so its events win where the eyes' events overlap:
  # its short saccade at 1008, then the left eye's blink and the rest of its saccade.
  F, S, B, U = FIXATION, SACCADE, BLINK, UNKNOWN
  assert column(rec, "event") == [F, F, F, S, B, B, S, U]
  np.testing.assert_array_equal(rec.column("event_duration_ms"), [6, 6, 6, 2, 4, 4, 8, NAN])
  np.testing.assert_array_equal(rec.column("fixation_x"), [822 / w] * 3 + [NAN] * 5)
  np.testing.assert_array_equal(rec.column("fixation_y"), [472 / h] * 3 + [NAN] * 5)
  assert all(rec.measured)


def test_monocular_asc_to_the_schema(tmp_path):
  rec = registry.read(write(tmp_path, MONOCULAR))
  w, h = 1024, 768  # DISPLAY_COORDS 0 0 1023 767
  assert rec.units["pupil"] == "EyeLink pupil diameter (arbitrary units)"
  # Two recording blocks: time runs on across the gap between them.
  assert column(rec, "time_ms") == [0, 1, 2, 3, 200, 201]
  np.testing.assert_array_equal(
    rec.column("gaze_x"), [512 / w, 256 / w, NAN, -10.5 / w, 1024 / w, 1024 / w]
  )
  np.testing.assert_array_equal(rec.column("gaze_y"), [384 / h, 192 / h, NAN, 800 / h, 0, 0])
  np.testing.assert_array_equal(rec.column("pupil_right"), [4012, 4013, NAN, 4020, 3990, 3991])
  assert column(rec, "valid_right") == [1, 1, 0, 1, 1, 1]
  assert np.isnan(rec.column("pupil_left")).all() and np.isnan(rec.column("valid_left")).all()
  assert column(rec, "event") == [UNKNOWN, UNKNOWN, BLINK, UNKNOWN, FIXATION, FIXATION]
  np.testing.assert_array_equal(rec.column("event_duration_ms"), [NAN, NAN, 1, NAN, 2, 2])
  np.testing.assert_array_equal(rec.column("fixation_x"), [NAN] * 4 + [1.0, 1.0])
  measured = dict(zip(FIELDS, rec.measured, strict=True))
  assert not measured["pupil_left"] and not measured["valid_left"] and measured["pupil_right"]


def test_asc_without_events_leaves_the_event_fields_unmeasured(tmp_path):
  text = "\n".join(
    line for line in MONOCULAR.splitlines() if not line.startswith(("EVENTS", "EBLINK", "EFIX"))
  )
  rec = registry.read(write(tmp_path, text))
  for name in ("event", "event_duration_ms", "fixation_x", "fixation_y"):
    assert np.isnan(rec.column(name)).all(), name


def test_screen_size_from_the_options_when_the_file_has_none(tmp_path):
  path = write(tmp_path, MONOCULAR.replace("MSG\t500 DISPLAY_COORDS 0 0 1023 767\n", ""))
  with pytest.raises(RecordingError, match=r"recording\.asc: no GAZE_COORDS.*screen_px"):
    registry.read(path)
  rec = registry.read(path, options={"screen_px": [2048, 1536]})
  assert rec.column("gaze_x")[0] == 512 / 2048 and rec.column("gaze_y")[1] == 192 / 1536
  with pytest.raises(RecordingError, match=r"screen_px must be \[width, height\]"):
    registry.read(path, options={"screen_px": "big"})


@pytest.mark.parametrize(
  "change, message",
  [
    (
      (
        "1006\t 804.0\t 454.0\t 1002.0\t 824.0\t 474.0\t 1102.0\t  1.0\t -2.0\t  3.0\t  4.0",
        "1006 804 454",
      ),
      r"line 17: expected a time and 6 values",
    ),
    (("1004\t 800.0", "1004\t 80x.0"), r"line 15: expected a time and 6 values.*'1004\\t 80x"),
    (("START\t1002 \tLEFT\tRIGHT\tSAMPLES\tEVENTS\n", ""), None),
    (("SAMPLES\tGAZE", "SAMPLES\tHREF"), r"line 10: samples in HREF coordinates.*edf2asc -sg"),
    (("EFIX L   1002\t1006\t6", "EFIX L   1002\tlate\t6"), r"line 18: expected 'EFIX L\|R"),
  ],
)
def test_damaged_asc_names_the_line(tmp_path, change, message):
  text = BINOCULAR.replace(*change)
  if message is None:  # no START, but the SAMPLES line names the eyes: still readable
    assert registry.read(write(tmp_path, text)).rows == 8
    return
  with pytest.raises(RecordingError, match=message):
    registry.read(write(tmp_path, text))


def test_samples_before_any_eye_is_named(tmp_path):
  text = MONOCULAR.replace("SAMPLES\tGAZE\tRIGHT", "SAMPLES\tGAZE").replace(
    "START\t600 \tRIGHT", "START\t600"
  )
  with pytest.raises(RecordingError, match=r"line 7: a sample before any START or SAMPLES line"):
    registry.read(write(tmp_path, text))


def test_not_eyelink(tmp_path):
  csv = write(tmp_path, "time,x,y\n1,2,3\n", "data.asc")
  assert not registry.formats()["eyelink_asc"].detect(csv)
  assert not registry.formats()["eyelink_edf"].detect(csv)
  assert not registry.formats()["eyelink_asc"].detect(tmp_path)


def test_edf_is_detected_and_needs_its_extra(tmp_path, monkeypatch):
  path = tmp_path / "sub01.dat"
  path.write_bytes(b"SR_RESEARCH_1000FILE\nDATE: Mon Jun  5 10:00:00 2023\n" + bytes(64))
  assert registry.detect(path).name == "eyelink_edf"
  assert registry.formats()["eyelink_edf"].extra == "edf"
  monkeypatch.setitem(sys.modules, "eyelinkio", None)  # as if not installed
  with pytest.raises(RecordingError) as e:
    registry.read(path)
  assert str(e.value).startswith(f"{path}: an EyeLink EDF file")
  assert "pip install emer_jax[edf]" in str(e.value) and "\n" not in str(e.value)


def test_real_edf_file(tmp_path):
  """eyelinkio ships SR Research EDF files for its own tests: one read both ways agrees."""
  eyelinkio = pytest.importorskip("eyelinkio")
  import pathlib

  path = pathlib.Path(eyelinkio.__file__).parent / "tests" / "data" / "test_raw.edf"
  if not path.is_file():
    pytest.skip("this eyelinkio has no test EDF files")
  assert registry.detect(path).name == "eyelink_edf"
  rec = registry.read(path)
  raw = eyelinkio.read_edf(str(path))
  fields = raw["info"]["sample_fields"]
  x, y, ps = (raw["samples"][fields.index(n)] for n in ("xpos", "ypos", "ps"))
  assert rec.rows == len(raw["times"]) and rec.rate_hz == raw["info"]["sfreq"]
  np.testing.assert_array_equal(rec.column("time_ms"), raw["times"] * 1000)
  found = np.isfinite(x) & np.isfinite(y)
  np.testing.assert_array_equal(rec.column("gaze_x"), np.where(found, x / 1920, np.nan))
  np.testing.assert_array_equal(rec.column("gaze_y"), np.where(found, y / 1080, np.nan))
  np.testing.assert_array_equal(rec.column("pupil_left"), np.where(ps > 0, ps, np.nan))
  assert np.isnan(rec.column("pupil_right")).all()
  fixations = raw["discrete"]["fixations"]
  on_fixation = rec.column("event") == FIXATION
  assert on_fixation.sum() > rec.rows / 2
  assert set(rec.column("fixation_x")[on_fixation]) <= set(fixations["axp"] / 1920)
  assert set(np.unique(rec.column("event"))) == {UNKNOWN, FIXATION, SACCADE, BLINK}
