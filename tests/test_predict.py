"""emer_jax.predict and emer_jax.export on a tiny trained workdir; tfds_emer.faces on a real face."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emer_jax import export, predict
from emer_jax.data.source import open_source
from emer_jax.predict import recordings, samples
from tests.recording_testing import astronaut_frames, write_video
from tests.test_train import REPO, TINY
from tfds_emer import face_media, faces, release
from tfds_emer.release import ReleaseError

RUN = "fold1_seed0"


@pytest.fixture(scope="module")
def workdir(small_data_dir, tmp_path_factory):
  """EMERT (tiny) trained 2 steps on EMER-Sim small with ER and FER 7-class heads."""
  path = str(tmp_path_factory.mktemp("predict") / "run")
  cmd = [
    sys.executable,
    "-m",
    "emer_jax.main",
    "--config=configs/quickstart.py",
    f"--workdir={path}",
    f"--config.data_dir={small_data_dir}",
    "--config.total_steps=2",
    "--config.eval_every_steps=2",
    "--config.checkpoint_every_steps=2",
    "--config.extra_targets=('fer_emotion',)",
    *TINY,
  ]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  return path


@pytest.fixture(scope="module")
def loaded(workdir):
  return predict.from_workdir(workdir, RUN)


@pytest.fixture(scope="module")
def test_sample(workdir, small_data_dir):
  """(sample id, built example, the trainer's test probabilities) of one test sample."""
  table = pd.read_csv(os.path.join(workdir, f"predictions_{RUN}.csv"), dtype={"sample_id": str})
  data = open_source("emer/synthetic_small", small_data_dir, prepare=False)
  sid = table.sample_id[0]
  example = data.source[list(data.index["sample_id"]).index(sid)]
  return sid, example, table.iloc[0]


def test_frames_and_pro_lab_export_predict_as_evaluation_does(loaded, test_sample, tmp_path):
  sid, example, want = test_sample
  rec = samples.write_recording(example, tmp_path / "in", sid)
  header = rec.eye_export.read_text().splitlines()[0]
  assert "Gaze point X [DACS px]" in header and "\t" in header
  assert "," in rec.eye_export.read_text().splitlines()[1]  # decimal commas
  out = tmp_path / "out" / "OUT.json"
  predict.predict(loaded, [rec], out)
  report = json.loads(out.read_text())
  (entry,) = report["recordings"]
  assert set(entry) == {
    "id",
    "frames_total",
    "frames_with_face",
    "eye_rows_total",
    "eye_rows_valid",
    "eye_format",
    "heads",
    "gap",
    "warnings",
  }
  assert entry["id"] == sid and entry["frames_total"] == entry["frames_with_face"] == 16
  assert entry["eye_format"] == "tobii"
  assert entry["eye_rows_total"] == len(example["eye"]) >= entry["eye_rows_valid"] > 0
  for target in ("er_emotion", "fer_emotion"):
    head = entry["heads"][target]
    got = np.array(list(head["probabilities"].values()))
    np.testing.assert_allclose(got, want.filter(like=f"prob_{target}_").to_numpy(float), atol=1e-5)
    assert head["predicted"] == max(head["probabilities"], key=head["probabilities"].get)
  er, fer = (entry["heads"][t]["predicted"] for t in ("er_emotion", "fer_emotion"))
  assert entry["gap"] == (er != fer)
  csv = pd.read_csv(out.with_suffix(".csv"))
  assert csv["pred_er_emotion"][0] == er and len(csv) == 1
  assert (out.parent / f"OUT_{sid}.png").stat().st_size > 10_000


def test_eye_export_forms_parse_to_the_same_39_columns(test_sample, tmp_path):
  sid, example, _ = test_sample
  rec = samples.write_recording(example, tmp_path, sid)
  table = pd.read_csv(rec.eye_export, sep="\t", decimal=",")[:300]  # xlsx writing is slow
  table.to_csv(rec.eye_export, sep="\t", decimal=",", index=False, float_format="%.9g")
  want = release.read_eye(rec.eye_export, {})
  plain = table.rename(columns={v: k for k, v in samples.PRO_LAB_HEADERS.items()})
  plain.to_csv(tmp_path / "plain.tsv", sep="\t", index=False, na_rep="")
  table.to_excel(tmp_path / "book.xlsx", index=False)
  for path in (tmp_path / "plain.tsv", tmp_path / "book.xlsx"):
    got = release.read_eye(path, {})
    np.testing.assert_array_equal(got.values, want.values, err_msg=str(path))
    assert got.gaze_cols == want.gaze_cols and got.values.shape[1] == 39


def test_faces_found_and_centred_on_a_moving_relit_face(tmp_path):
  frames, centres, sides = astronaut_frames(90)  # 3 s at 30 fps
  found = faces.face_crops(frames, 16)
  assert found.frames_with_face >= 0.9 * found.frames_total == 81
  for box, centre, side in zip(found.boxes, centres, sides, strict=True):
    if box is not None:
      x, y, w, h = box
      assert np.hypot(x + w / 2 - centre[0], y + h / 2 - centre[1]) < 0.15 * side
      assert 0.8 < w / side < 1.3
  assert found.crops.shape == (16, 112, 112, 3) and found.crops.dtype == np.uint8
  # The crop's centre is the face: skin, not the background's blue-green gradient.
  r, g, b = found.crops[:, 48:64, 48:64].reshape(-1, 3).mean(0)
  assert r > b and r > g
  video = tmp_path / "face.mp4"
  write_video(video, frames)
  assert face_media.read_faces(None, video, 8).shape == (8, 112, 112, 3)


def test_no_face_missing_gaze_and_unreadable_files_each_say_so(loaded, test_sample, tmp_path):
  sid, example, _ = test_sample
  rec = samples.write_recording(example, tmp_path, sid)
  noise = np.random.default_rng(0).integers(0, 255, (20, 120, 160, 3), dtype=np.uint8)
  write_video(tmp_path / "noface.mp4", list(noise))
  no_face = recordings.Recording("x", rec.eye_export, video=tmp_path / "noface.mp4")
  with pytest.raises(ReleaseError, match=r"noface.mp4: a face was found in 0 of the first"):
    recordings.load(no_face, loaded.settings)
  table = pd.read_csv(rec.eye_export, sep="\t", decimal=",")
  table.drop(columns="Gaze point Y [DACS px]").to_csv(
    tmp_path / "nogaze.tsv", sep="\t", index=False
  )
  missing = recordings.Recording("x", tmp_path / "nogaze.tsv", frames=rec.frames)
  with pytest.raises(
    ReleaseError, match=r"nogaze.tsv: no gaze columns; expected .Gaze point X. or"
  ):
    recordings.load(missing, loaded.settings)
  (tmp_path / "broken.xlsx").write_bytes(b"not a workbook")
  broken = recordings.Recording("x", tmp_path / "broken.xlsx", frames=rec.frames)
  with pytest.raises(ReleaseError, match=r"broken.xlsx: unreadable eye export"):
    recordings.load(broken, loaded.settings)
  (tmp_path / "broken.mp4").write_bytes(b"garbage")
  bad_video = recordings.Recording("x", rec.eye_export, video=tmp_path / "broken.mp4")
  with pytest.raises(ReleaseError, match=r"broken.mp4: unreadable face video"):
    recordings.load(bad_video, loaded.settings)
  for recording, path in ((missing, "nogaze.tsv"), (broken, "broken.xlsx")):
    with pytest.raises(recordings.RecordingError) as caught:  # the file first, not the release
      recordings.load(recording, loaded.settings)
    assert str(caught.value).startswith(f"{tmp_path}/{path}: "), str(caught.value)


def test_a_one_frame_video_predicts_with_a_warning(loaded, test_sample, tmp_path):
  sid, example, _ = test_sample
  rec = samples.write_recording(example, tmp_path, sid)
  frames, _, _ = astronaut_frames(1)
  write_video(tmp_path / "one.mp4", frames)
  one = recordings.load(
    recordings.Recording("one", rec.eye_export, video=tmp_path / "one.mp4"), loaded.settings
  )
  frames_kept = loaded.settings.face_frames
  assert one.info["frames_total"] == one.info["frames_with_face"] == 1
  assert one.info["warnings"][0] == (
    f"1 frame with a face, fewer than the {frames_kept} a sample holds: frames are repeated."
  )
  rec_of_all = recordings.load(rec, loaded.settings)  # as many frames as a sample: no such line
  assert not any("frames are repeated" in w for w in rec_of_all.info["warnings"])


def test_export_reproduces_the_model_and_runs_from_the_command_line(loaded, test_sample, tmp_path):
  sid, example, _ = test_sample
  export.export_model(loaded, str(tmp_path / "exported"))
  served = predict.from_exported(str(tmp_path / "exported"))
  assert served.settings.to_json() == loaded.settings.to_json()
  rec = samples.write_recording(example, tmp_path / "in", sid)
  one = recordings.load(rec, loaded.settings).inputs
  batch = {  # a batch size the artefact never saw: it is polymorphic
    k: np.stack([one[k]] * 3) for k in ("face", "eye", "gaze", "fixation_map")
  }
  batch["eye"][1] += 0.5
  want, got = loaded.function()(batch), served.function()(batch)
  for target in want:
    np.testing.assert_allclose(np.asarray(got[target]), np.asarray(want[target]), atol=1e-6)
  # A face video and an export side by side in --input_dir, predicted by the artefact.
  frames, _, _ = astronaut_frames(30)
  write_video(tmp_path / "in" / "face1.mp4", frames)
  os.replace(rec.eye_export, tmp_path / "in" / "face1.tsv")
  os.rename(rec.frames, tmp_path / "frames_elsewhere")
  out = tmp_path / "out.json"
  cmd = [
    sys.executable,
    "-m",
    "emer_jax.predict",
    f"--exported={tmp_path / 'exported'}",
    f"--input_dir={tmp_path / 'in'}",
    f"--output={out}",
  ]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  (entry,) = json.loads(out.read_text())["recordings"]
  assert entry["id"] == "face1" and entry["frames_with_face"] >= 27
  assert isinstance(entry["gap"], bool) and (tmp_path / "out_face1.png").exists()


def test_checkpoint_with_its_config_and_normalisation_file(loaded, workdir, test_sample, tmp_path):
  from flax import nnx

  from emer_jax.train.checkpoint import save_model

  save_model(str(tmp_path / "model"), nnx.merge(loaded.graphdef, loaded.states[0]))
  with open(os.path.join(workdir, "config.json")) as f:
    description = json.load(f)["model"] | {"heads": {"er_emotion": 7, "fer_emotion": 7}}
  (tmp_path / "config.json").write_text(json.dumps(description))
  stats = loaded.settings.to_json()["normalisation"]
  stats["eye_mean"] = [m + 1.0 for m in stats["eye_mean"]]  # the checkpoint's own statistics
  (tmp_path / "normalisation.json").write_text(json.dumps(stats))
  converted = predict.from_checkpoint(str(tmp_path), dataset="emer/synthetic_small")
  np.testing.assert_allclose(converted.settings.sampler.normalisation.eye_mean, stats["eye_mean"])
  sid, example, _ = test_sample
  rec = samples.write_recording(example, tmp_path / "in", sid)
  inputs = recordings.load(rec, loaded.settings).inputs
  want = loaded.function()(predict.model.batch_of(inputs))
  got = converted.function()(predict.model.batch_of(inputs))
  for target in want:
    np.testing.assert_allclose(np.asarray(got[target]), np.asarray(want[target]), atol=1e-6)


def test_the_picture_is_named_once_per_id_with_labelled_axes_and_evenly_spaced_crops():
  from emer_jax.predict import picture, report
  from emer_jax.protocols import TARGETS

  assert report.picture_path("out/all.json", "P01").as_posix() == "out/all_P01.png"
  assert report.picture_path("out/P01.json", "P01").as_posix() == "out/P01.png"
  for n, want in ((16, [0, 2, 4, 6, 8, 10, 12, 14]), (32, list(range(0, 32, 4))), (1, [0])):
    assert list(picture.crop_picks(n)) == want
  names = TARGETS["er_emotion"].class_names
  heads = {
    t: {"probabilities": dict.fromkeys(names, 1 / 7), "predicted": names[0]}
    for t in ("er_emotion", "fer_emotion")
  }
  loaded = recordings.Loaded(
    inputs={},
    example={
      "face": np.zeros((16, 112, 112, 3), np.uint8),
      "fixation_map": np.zeros((32, 32, 1), np.float32),
    },
    gaze_raw=np.random.default_rng(0).uniform(0, 1000, (50, 2)),
    info={},
  )
  fig = picture.figure(loaded, {"id": "P01", "heads": heads, "gap": False}, (1920, 1080))
  crops, (gaze, fixations, bars) = fig.axes[:8], fig.axes[8:]
  assert [ax.get_title() for ax in crops] == [f"crop {i + 1} of 16" for i in range(0, 16, 2)]
  for ax in (gaze, fixations):
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("screen x (px)", "screen y (px)")
  assert (bars.get_xlabel(), bars.get_ylabel()) == ("class", "probability")
  fig.canvas.draw()
  lefts = [ax.get_position().x0 for ax in crops]
  np.testing.assert_allclose(np.diff(lefts), np.diff(lefts)[0], rtol=1e-6)  # evenly spaced
