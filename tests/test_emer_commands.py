"""The dataset commands run as programs: fake release, validate, build, draw."""

import subprocess
import sys

import matplotlib.pyplot as plt
import matplotlib.text

from tests.noise import assert_quiet
from tfds_emer import draw
from tfds_emer import release_layout as layout


def _run(*args):
  return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)


def test_fake_release_validate_build(tmp_path):
  release = tmp_path / "release"
  out = _run(
    "tfds_emer.fake_release",
    f"--output={release}",
    "--num_subjects=1",
    "--num_samples=2",
    "--eye_format=tsv",
    "--frames_per_clip=4",
  )
  assert out.returncode == 0, out.stderr
  assert len(list((release / layout.EYE_DIR).glob("*.tsv"))) == 2
  assert "writing fake release" in out.stderr  # the progress bar's phase
  assert out.stdout.strip().splitlines()[-1] == f"wrote {release / 'manifest.json'}"
  out = _run("tfds_emer.validate", f"--manual_dir={release}", "--face_frames=4")
  assert out.returncode == 0, out.stdout + out.stderr
  assert "samples: 2" in out.stdout
  assert out.stdout.rstrip().endswith("OK: 2 samples, 0 defects, 0 warnings")
  assert_quiet(out.stdout + out.stderr)
  out = _run(
    "tfds_emer.build", "--config=real", f"--manual_dir={release}", f"--data_dir={tmp_path / 'data'}"
  )
  assert out.returncode == 0, out.stderr
  last = out.stdout.strip().splitlines()[-1]
  assert last.startswith(
    f"wrote {tmp_path / 'data' / 'emer' / 'real' / '1.0.0'} (emer/real/1.0.0: 2"
  )
  assert_quiet(out.stdout + out.stderr)
  (release / layout.SET_FILE).write_text("nonsense line here\n")
  out = _run("tfds_emer.validate", f"--manual_dir={release}", "--face_frames=4")
  assert out.returncode == 1 and "defects (1):" in out.stdout and "cannot parse" in out.stdout
  assert out.stdout.rstrip().endswith("1 defect, 0 warnings; the build would stop.")


def test_draw(tmp_path):
  png = tmp_path / "sim.png"
  out = _run("tfds_emer.draw", f"--output={png}")
  assert out.returncode == 0, out.stderr
  assert png.read_bytes()[:4] == b"\x89PNG"
  assert "drawing EMER-Sim picture" in out.stderr
  assert out.stdout.strip().startswith(f"wrote {png} (")


def test_picture_is_readable():
  fig = draw.picture()
  fig.canvas.draw()  # tick labels exist once drawn
  assert fig.get_size_inches()[0] * fig.dpi >= 1600
  texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
  assert len(texts) > 40  # titles, tick labels, axis labels, legend
  small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 10]
  assert not small
  plt.close(fig)
