"""Pupil Player export folders and Pupil Cloud (Neon, Invisible) folders → the common schema."""

import json

import numpy as np
import pytest

from tfds_emer.trackers import registry
from tfds_emer.trackers.schema import BLINK, FIXATION, SACCADE, UNKNOWN, RecordingError

NAN = np.nan
T = [100.0, 100.015625, 100.03125, 100.046875, 100.0625]  # Player clock, s (exact in binary)

PLAYER_GAZE = """\
gaze_timestamp,world_index,confidence,norm_pos_x,norm_pos_y,base_data,gaze_point_3d_x
100.0,0,0.95,0.25,0.75,100.0-0 100.001-1,
100.015625,0,0.9,0.5,0.5,100.015625-0 100.016625-1,
100.03125,1,0.3,0.9,0.1,100.03125-0 100.03225-1,
100.046875,1,0.8,0.125,0.0,100.047875-1,
100.0625,2,0.99,1.0,1.0,100.0625-0 100.0635-1,
"""
PUPIL_HEADER = "pupil_timestamp,world_index,eye_id,confidence,norm_pos_x,norm_pos_y,diameter,method,diameter_3d\n"
RIGHT_MM = [3.0, 3.25, 3.5, 3.75, 4.0]
LEFT_MM = [2.5, 2.75, 3.0, 3.25, 3.5]
LEFT_CONFIDENCE = [0.9, 0.9, 0.2, 0.9, 0.9]


def pupil_rows(with_3d=True):
  """Both eyes, a 2d and a pye3d row per eye frame; the left eye 1 ms after the right."""
  rows = []
  for j, t in enumerate(T):
    for eye, offset, mm, conf in (
      (0, 0.0, RIGHT_MM[j], 0.9),
      (1, 0.001, LEFT_MM[j], LEFT_CONFIDENCE[j]),
    ):
      rows.append(f"{t + offset},{j},{eye},{conf},0.5,0.5,{40 + j + 10 * eye},2d c++,")
      if with_3d:
        rows.append(f"{t + offset},{j},{eye},{conf},0.5,0.5,{40 + j},pye3d 0.3.0 real-time,{mm}")
  return PUPIL_HEADER + "\n".join(rows) + "\n"


FIXATIONS = (
  "id,start_timestamp,duration,start_frame_index,end_frame_index,norm_pos_x,norm_pos_y,"
  "dispersion,confidence,method,gaze_point_3d_x,gaze_point_3d_y,gaze_point_3d_z,base_data\n"
  "1,100.0,15.625,0,0,0.375,0.625,1.2,0.9,3d gaze,,,,\n"
)
BLINKS = (
  "id,start_timestamp,duration,end_timestamp,start_frame_index,index,end_frame_index\n"
  "1,100.03125,0.015625,100.046875,1,1,2\n"
)


def player_folder(tmp_path, **files):
  folder = tmp_path / "exports" / "000"
  folder.mkdir(parents=True)
  defaults = {
    "gaze_positions.csv": PLAYER_GAZE,
    "pupil_positions.csv": pupil_rows(),
    "fixations.csv": FIXATIONS,
    "blinks.csv": BLINKS,
  }
  for name, text in {**defaults, **files}.items():
    if text is not None:
      (folder / name).write_text(text, encoding="utf-8")
  return folder


def test_player_folder_to_the_schema(tmp_path):
  folder = player_folder(tmp_path)
  assert registry.detect(folder).name == "pupil_player"
  rec = registry.read(folder)
  assert rec.format == "pupil_player" and rec.units == {"pupil": "mm"}
  assert rec.column("time_ms").tolist() == [0.0, 15.625, 31.25, 46.875, 62.5]
  # Row 2 has confidence 0.3 < 0.6: no gaze. Player's y grows upwards; the schema's downwards.
  np.testing.assert_array_equal(rec.column("gaze_x"), [0.25, 0.5, NAN, 0.125, 1.0])
  np.testing.assert_array_equal(rec.column("gaze_y"), [0.25, 0.5, NAN, 1.0, 0.0])
  # Row 3 was mapped from eye 1 (the left) alone.
  assert rec.column("valid_right").tolist() == [1, 1, 0, 0, 1]
  assert rec.column("valid_left").tolist() == [1, 1, 0, 1, 1]
  # pye3d rows give mm; the left eye's third frame has confidence 0.2.
  np.testing.assert_array_equal(rec.column("pupil_right"), RIGHT_MM)
  np.testing.assert_array_equal(rec.column("pupil_left"), [2.5, 2.75, NAN, 3.25, 3.5])
  assert rec.column("event").tolist() == [FIXATION, FIXATION, BLINK, BLINK, UNKNOWN]
  np.testing.assert_array_equal(rec.column("event_duration_ms"), [15.625] * 4 + [NAN])
  np.testing.assert_array_equal(rec.column("fixation_x"), [0.375, 0.375, NAN, NAN, NAN])
  np.testing.assert_array_equal(rec.column("fixation_y"), [0.375, 0.375, NAN, NAN, NAN])
  assert all(rec.measured)


def test_player_min_confidence_option(tmp_path):
  rec = registry.read(player_folder(tmp_path), options={"min_confidence": 0.2})
  assert rec.column("gaze_x")[2] == 0.9 and rec.column("gaze_y")[2] == 1.0 - 0.1
  assert rec.column("valid_right")[2] == 1 and rec.column("pupil_left")[2] == 3.0


def test_player_2d_pupils_and_no_events(tmp_path):
  gaze = "\n".join(
    ",".join(line.split(",")[:5]) for line in PLAYER_GAZE.splitlines()
  )  # no base_data column
  folder = player_folder(
    tmp_path,
    **{
      "gaze_positions.csv": gaze + "\n",
      "pupil_positions.csv": pupil_rows(with_3d=False),
      "fixations.csv": None,
      "blinks.csv": None,
    },
  )
  rec = registry.read(folder)
  assert rec.units["pupil"].startswith("px")
  np.testing.assert_array_equal(rec.column("pupil_right"), [40, 41, 42, 43, 44])
  np.testing.assert_array_equal(rec.column("pupil_left"), [50, 51, NAN, 53, 54])
  valid = [1, 1, 0, 1, 1]  # both eyes follow the gaze row's confidence
  assert rec.column("valid_left").tolist() == valid == rec.column("valid_right").tolist()
  assert np.isnan(rec.column("event")).all() and np.isnan(rec.column("fixation_x")).all()


def test_player_folder_without_gaze_names_the_file(tmp_path):
  folder = player_folder(tmp_path, **{"gaze_positions.csv": None})
  assert registry.detect(folder).name == "pupil_player"
  with pytest.raises(RecordingError) as e:
    registry.read(folder)
  assert str(e.value).startswith(f"{folder}: no gaze_positions.csv in this folder")


def test_player_bad_cell_names_file_line_and_column(tmp_path):
  folder = player_folder(
    tmp_path, **{"gaze_positions.csv": PLAYER_GAZE.replace("0.9,0.5,0.5", "0.9,half,0.5")}
  )
  with pytest.raises(RecordingError, match=r"gaze_positions\.csv line 3: column 'norm_pos_x'"):
    registry.read(folder)
  folder = player_folder(tmp_path / "b", **{"fixations.csv": "id,start_timestamp\n1,100.0\n"})
  with pytest.raises(RecordingError, match=r"fixations\.csv: no column 'duration'"):
    registry.read(folder)


NS0 = 1_700_000_000_000_000_000


def ns(ms):
  return NS0 + int(ms * 1_000_000)


NEON_GAZE = (
  "section id,recording id,timestamp [ns],gaze x [px],gaze y [px],worn,fixation id,blink id,azimuth [deg],elevation [deg]\n"
  + "".join(
    f"s1,r1,{ns(ms)},{x},{y},{worn},{fix},{blink},0.0,0.0\n"
    for ms, x, y, worn, fix, blink in [
      (0, 800.0, 600.0, 1.0, 1, ""),
      (5, 400.0, 300.0, 1.0, 1, ""),
      (10, 1600.0, 1200.0, 1.0, "", ""),
      (15, 0.0, 0.0, 0.0, "", ""),
      (20, 1200.0, 900.0, 1.0, "", 1),
      (25, 100.0, 50.0, 1.0, "", ""),
    ]
  )
)
NEON_EYES = (
  "section id,recording id,timestamp [ns],pupil diameter left [mm],pupil diameter right [mm],eye ball center left x [mm]\n"
  + "".join(
    f"s1,r1,{ns(ms)},{left},{right},1.0\n"
    for ms, left, right in zip(
      [0, 5, 10, 15, 20, 25],
      [3.0, 3.125, 3.25, 3.375, 3.5, 3.625],
      [4.0, 4.125, "", 4.375, 4.5, 4.625],
      strict=True,
    )
  )
)
NEON_FIXATIONS = (
  "section id,recording id,fixation id,start timestamp [ns],end timestamp [ns],duration [ms],"
  f"fixation x [px],fixation y [px],azimuth [deg],elevation [deg]\ns1,r1,1,{ns(0)},{ns(5)},5,600.0,450.0,0,0\n"
)
NEON_SACCADES = (
  "section id,recording id,saccade id,start timestamp [ns],end timestamp [ns],duration [ms],"
  "amplitude [px],amplitude [deg],mean velocity [px/s],peak velocity [px/s]\n"
  f"s1,r1,1,{ns(10)},{ns(15)},5,100,2,1000,2000\n"
)
NEON_BLINKS = (
  "section id,recording id,blink id,start timestamp [ns],end timestamp [ns],duration [ms]\n"
  f"s1,r1,1,{ns(20)},{ns(22)},2\n"
)


def neon_folder(tmp_path, info=None, **files):
  """A Cloud download's folder; info=False leaves out info.json."""
  info = {"module_serial_number": "123456", "recording_id": "r1"} if info is None else info
  folder = tmp_path / "2024-01-01_sub01-1a2b3c4d"
  folder.mkdir(parents=True)
  defaults = {
    "gaze.csv": NEON_GAZE,
    "3d_eye_states.csv": NEON_EYES,
    "fixations.csv": NEON_FIXATIONS,
    "saccades.csv": NEON_SACCADES,
    "blinks.csv": NEON_BLINKS,
  }
  for name, text in {**defaults, **files}.items():
    if text is not None:
      (folder / name).write_text(text, encoding="utf-8")
  if info is not False:
    (folder / "info.json").write_text(json.dumps(info), encoding="utf-8")
  return folder


def test_neon_folder_to_the_schema(tmp_path):
  folder = neon_folder(tmp_path)
  assert registry.detect(folder).name == "pupil_neon"
  assert registry.detect(folder / "gaze.csv").name == "pupil_neon"  # a file stands for its folder
  rec = registry.read(folder)
  assert rec.format == "pupil_neon" and rec.units == {"pupil": "mm"}
  assert rec.column("time_ms").tolist() == [0, 5, 10, 15, 20, 25]
  w, h = 1600, 1200  # Neon's scene camera
  np.testing.assert_array_equal(rec.column("gaze_x"), [0.5, 0.25, 1.0, NAN, 0.75, 100 / w])
  np.testing.assert_array_equal(rec.column("gaze_y"), [0.5, 0.25, 1.0, NAN, 0.75, 50 / h])
  valid = [1, 1, 1, 0, 0, 1]  # not worn at 15 ms, blinking at 20 ms
  assert rec.column("valid_left").tolist() == valid == rec.column("valid_right").tolist()
  np.testing.assert_array_equal(rec.column("pupil_left"), [3.0, 3.125, 3.25, 3.375, 3.5, 3.625])
  np.testing.assert_array_equal(rec.column("pupil_right"), [4.0, 4.125, NAN, 4.375, 4.5, 4.625])
  assert rec.column("event").tolist() == [FIXATION, FIXATION, SACCADE, SACCADE, BLINK, UNKNOWN]
  np.testing.assert_array_equal(rec.column("event_duration_ms"), [5, 5, 5, 5, 2, NAN])
  np.testing.assert_array_equal(rec.column("fixation_x"), [600 / w, 600 / w] + [NAN] * 4)
  np.testing.assert_array_equal(rec.column("fixation_y"), [450 / h, 450 / h] + [NAN] * 4)


def test_invisible_and_unknown_scene_cameras(tmp_path):
  rec = registry.read(neon_folder(tmp_path / "a", info={"glasses_serial_number": "abc12"}))
  assert rec.column("gaze_x")[1] == 400 / 1088 and rec.column("gaze_y")[1] == 300 / 1080
  folder = neon_folder(tmp_path / "b", info=False)
  with pytest.raises(RecordingError, match=r"cannot tell the scene camera's size.*scene_px"):
    registry.read(folder)
  rec = registry.read(folder, options={"scene_px": [800, 600]})
  assert rec.column("gaze_x")[0] == 1.0 and rec.column("fixation_y")[0] == 0.75


def test_neon_folder_without_gaze_names_the_file(tmp_path):
  folder = neon_folder(tmp_path, **{"gaze.csv": None})
  assert registry.detect(folder).name == "pupil_neon"
  with pytest.raises(RecordingError) as e:
    registry.read(folder)
  assert str(e.value).startswith(f"{folder}: no gaze.csv in this folder")
  with pytest.raises(RecordingError, match=r": no gaze\.csv in this folder"):
    registry.read(tmp_path, format="pupil_neon")


def test_neon_and_player_folders_are_told_apart(tmp_path):
  neon, player = neon_folder(tmp_path / "n"), player_folder(tmp_path / "p")
  formats = registry.formats()
  assert not formats["pupil_player"].detect(neon) and not formats["pupil_neon"].detect(player)
  assert not formats["pupil_neon"].detect(tmp_path) and not formats["pupil_player"].detect(tmp_path)
  bad = neon_folder(tmp_path / "x", **{"gaze.csv": NEON_GAZE.replace(",400.0,", ",abc,")})
  with pytest.raises(RecordingError, match=r"gaze\.csv line 3: column 'gaze x \[px\]'"):
    registry.read(bad)
