"""Draws a picture of EMER-Sim: faces across emotions × intensities, a time course, eye rows.

python -m tfds_emer.draw --output=tfds_emer/emer_sim.png
"""

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tfds_emer import logs  # noqa: E402
from tfds_emer.sim import eye, face  # noqa: E402
from tfds_emer.sim.config import SimConfig  # noqa: E402
from tfds_emer.vocabulary import EMOTIONS  # noqa: E402

INTENSITIES = (0.75, 1.5, 2.25, 3.0)


def _rgb(img):
  return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)


FONT_PT = 11  # every text of the picture
DPI = 150


def picture(cfg: SimConfig | None = None, subjects=(1, 2), progress=None) -> plt.Figure:
  """The figure: faces across emotions × intensities, one clip over time, eye export rows."""
  cfg = cfg or SimConfig()
  step = progress or (lambda _: None)
  step("faces")
  apps = [face.appearance(cfg, np.random.default_rng([cfg.seed, 4, s])) for s in subjects]
  size = cfg.face_size
  mosaic = np.concatenate(
    [
      np.concatenate(
        [
          _rgb(face.draw(a, face.APEX[e] * face.strength(i), size, light=0.1))
          for a in apps
          for i in INTENSITIES
        ],
        axis=1,
      )
      for e in range(len(EMOTIONS))
    ]
  )
  clip = face.render(
    cfg, apps[0], np.random.default_rng(0), EMOTIONS.index("surprise"), 3.0, np.linspace(0, 1, 8)
  )
  with plt.rc_context({"font.size": FONT_PT}):
    fig = plt.figure(figsize=(12, 16), dpi=DPI)
    grid = fig.add_gridspec(3, 1, height_ratios=[7, 1.1, 2.6], hspace=0.2)
    ax = fig.add_subplot(grid[0])
    ax.imshow(mosaic)
    ax.set_yticks(np.arange(len(EMOTIONS)) * size + size / 2, EMOTIONS)
    ax.set_xticks(
      np.arange(2 * len(INTENSITIES)) * size + size / 2,
      [f"s{s} i={i:g}" for s in subjects for i in INTENSITIES],
    )
    ax.xaxis.tick_top()
    ax.set_title("EMER-Sim faces: displayed emotion × intensity (two subjects)", pad=22)
    step("one clip")
    ax = fig.add_subplot(grid[1])
    ax.imshow(np.concatenate(list(clip), axis=1))
    ax.set_yticks([])
    ax.set_xticks(np.arange(8) * size + size / 2, [f"{t:.2f}" for t in np.linspace(0, 1, 8)])
    ax.set_xlabel("time in the clip (fraction)")
    ax.set_title("one clip over time (surprise, intensity 3): onset, apex, offset")
    step("eye rows")
    plots = grid[2].subgridspec(1, 2, wspace=0.4)
    base = eye.baseline(cfg, np.random.default_rng(1))
    for k, emotion in enumerate(("sadness", "fear")):
      rows = eye.export(cfg, base, np.random.default_rng(2), EMOTIONS.index(emotion), 0.0)
      t = rows[:, 0] / 1000
      ax = fig.add_subplot(plots[0, k])
      ax.plot(t, rows[:, 2], lw=0.8, label="gaze x (px)")
      ax.plot(t, rows[:, 3], lw=0.8, label="gaze y (px)")
      lost = rows[:, 16] == 0
      ax.fill_between(t, 0, 1920, where=lost, color="red", alpha=0.2, label="invalid (blink/loss)")
      twin = ax.twinx()
      twin.plot(t, rows[:, 14], color="k", lw=0.5, label="pupil left (mm)")
      twin.set_ylabel("pupil (mm)")
      ax.set_ylabel("gaze (px)")
      ax.set_title(f"eye export rows, genuine {emotion}")
      ax.set_xlabel("time (s)")
      if k == 0:
        lines = ax.get_legend_handles_labels()
        pupil = twin.get_legend_handles_labels()
        ax.legend(
          lines[0] + pupil[0],
          lines[1] + pupil[1],
          loc="upper center",
          bbox_to_anchor=(1.15, -0.2),
          ncol=4,
        )
  return fig


def draw_picture(path, cfg: SimConfig | None = None, subjects=(1, 2), progress=None) -> str:
  """Draws `picture` into the PNG `path`; returns the 'wrote' line. `progress(phase)` is told
  each phase."""
  fig = picture(cfg, subjects, progress)
  if progress is not None:
    progress("saving")
  fig.savefig(path, bbox_inches="tight")
  plt.close(fig)
  h, w = cv2.imread(str(path)).shape[:2]
  return f"wrote {path} ({w}×{h} px)"


def main(argv):
  del argv
  with tqdm(total=4, desc="drawing EMER-Sim picture", unit="phase") as bar:

    def phase(name):
      bar.set_postfix_str(name)
      bar.update(bar.n < bar.total)

    line = draw_picture(flags.FLAGS.output, progress=phase)
  print(line)


if __name__ == "__main__":
  flags.DEFINE_string("output", "emer_sim.png", "PNG file to write.")
  logs.run(main)
