"""Writes EMER-Sim as a fake raw release in the official layout, to exercise the `real` path.

python -m tfds_emer.fake_release --output=DIR --num_subjects=5 [--eye_format=tsv]
"""

import pathlib

import cv2
import numpy as np
import pandas as pd
from absl import flags
from tqdm import tqdm

from emer_jax.protocols import EMOTIONS, POLARITIES
from tfds_emer import eye_export, logs
from tfds_emer import release_layout as layout
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim


def eye_table(sample_id: str, subject_id: int, rows: np.ndarray) -> pd.DataFrame:
  """A Tobii-like sheet: text columns, then the 39 numeric ones (NaN = empty cell)."""
  table = pd.DataFrame(rows, columns=list(eye_export.COLUMNS))
  table.insert(0, "Sensor", "Eye Tracker")
  table.insert(0, "Recording name", sample_id)
  table.insert(0, "Participant name", f"P{subject_id:03d}")
  return table


def write_eye(path: pathlib.Path, table: pd.DataFrame) -> None:
  if path.suffix == ".xlsx":
    table.to_excel(path, index=False)
  else:
    table.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False, na_rep="")


def write_video(path: pathlib.Path, frames: np.ndarray, fps: float = 10.0) -> None:
  h, w = frames.shape[1:3]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def label_table(samples) -> pd.DataFrame:
  return pd.DataFrame(
    [
      (
        s.sample_id,
        EMOTIONS[s.er_emotion],
        POLARITIES[s.er_polarity],
        s.er_valence,
        s.er_arousal,
        EMOTIONS[s.fer_emotion],
        POLARITIES[s.fer_polarity],
        s.fer_valence,
        s.fer_arousal,
        s.fer_intensity,
      )
      for s in samples
    ],
    columns=list(layout.LABEL_COLUMNS),
  )


def write_release(
  output,
  cfg: SimConfig,
  *,
  frames_per_clip: int = 32,
  eye_format: str = "xlsx",
  faces: str = "frames",
  progress: bool = True,
) -> EmerSim:
  """Writes the release of `cfg` under `output`; returns the simulator for comparisons.

  faces: 'frames' (aligned JPEG frames), 'video' (mp4 only) or 'both'.
  """
  out = pathlib.Path(output)
  for sub in (layout.EYE_DIR, layout.FACE_FRAMES_DIR, layout.FACE_VIDEO_DIR):
    (out / sub).mkdir(parents=True, exist_ok=True)
  sim = EmerSim(cfg)
  for lab in tqdm(sim.samples, desc="Writing fake EMER release", disable=not progress):
    raw = sim.sample(lab.index, frames_per_clip)
    table = eye_table(lab.sample_id, lab.subject_id, raw.eye)
    write_eye(out / layout.EYE_DIR / f"{lab.sample_id}.{eye_format}", table)
    if faces in ("frames", "both"):
      folder = out / layout.FACE_FRAMES_DIR / lab.sample_id
      folder.mkdir(exist_ok=True)
      for i, frame in enumerate(raw.frames):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if faces in ("video", "both"):
      write_video(out / layout.FACE_VIDEO_DIR / f"{lab.sample_id}.mp4", raw.frames)
  label_table(sim.samples).to_excel(out / layout.LABEL_FILE, index=False)
  lines = [f"{s.sample_id} set{s.fold}" for s in sim.samples]
  (out / layout.SET_FILE).write_text("\n".join(lines) + "\n")
  return sim


def main(argv):
  del argv
  f = flags.FLAGS
  cfg = SimConfig(
    seed=f.seed, num_subjects=f.num_subjects, num_samples=f.num_samples or 10 * f.num_subjects
  )
  write_release(
    f.output, cfg, frames_per_clip=f.frames_per_clip, eye_format=f.eye_format, faces=f.faces
  )


if __name__ == "__main__":
  flags.DEFINE_string("output", None, "Folder to write the release into.", required=True)
  flags.DEFINE_integer("num_subjects", 5, "Number of subjects.")
  flags.DEFINE_integer("num_samples", None, "Number of samples (default 10 per subject).")
  flags.DEFINE_integer("seed", 0, "EMER-Sim seed.")
  flags.DEFINE_integer("frames_per_clip", 32, "Face frames written per sample.")
  flags.DEFINE_enum("eye_format", "xlsx", ["xlsx", "tsv", "csv"], "Eye export format.")
  flags.DEFINE_enum("faces", "frames", ["frames", "video", "both"], "Face modality form.")
  logs.run(main)
