"""Writes EMER-Sim as a fake raw release in the official layout, to exercise the `real` path.

  python -m tfds_emer.fake_release --output=DIR [--scale=ci|small|paper] [--eye_format=xlsx]
      [--header_style=prolab|plain] [--faces=frames|video|both] [--workers=N]

Eye exports look like Tobii Pro Lab's (`--header_style=prolab`: unit-bracketed headers,
`Recording timestamp [μs]`, text `Validity`/`Eye movement type`, a `Sensor` column with a few
rows of another sensor); `manifest.json` lists what every sample must build into.
"""

import dataclasses
import hashlib
import json
import pathlib

import cv2
import numpy as np
import openpyxl
import pandas as pd
from absl import flags
from tqdm import tqdm

from tfds_emer import eye_export, logs, parallel
from tfds_emer import release_layout as layout
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim
from tfds_emer.vocabulary import EMOTIONS, LABEL_FIELDS, POLARITIES


@dataclasses.dataclass(frozen=True)
class Scale:
  sim: SimConfig
  frames_per_clip: int
  faces: str


SCALES = {
  # A few seconds of data per sample: what CI builds.
  "ci": Scale(
    SimConfig(seed=7, num_subjects=2, num_samples=6, clip_seconds=(2.0, 3.0)), 6, "frames"
  ),
  "small": Scale(SimConfig(num_subjects=5, num_samples=50), 32, "frames"),
  # The paper's size: 1,303 samples of 121 subjects, ~10 s clips at 150 Hz (~1,470 eye rows),
  # 300 face frames, as frame folders and videos.
  "paper": Scale(SimConfig(eye_rate_hz=150.0, clip_seconds=(8.0, 11.6)), 300, "both"),
}
OTHER_SENSOR_EVERY = 100  # a Pro Lab-style export gets one 'Mouse' row per this many eye rows
_TEXT_COLUMNS = ("Participant name", "Recording name", "Sensor")


def as_written(rows: np.ndarray, style: str) -> np.ndarray:
  """The raw rows as the export holds them (Pro Lab writes whole microseconds)."""
  if style != "prolab":
    return rows
  rows = rows.copy()
  rows[:, 0] = np.round(rows[:, 0] * 1000) / 1000
  return rows


def eye_table(sample_id: str, subject_id: int, rows: np.ndarray, style="prolab") -> pd.DataFrame:
  """A Tobii-like sheet: text columns, then the 39 columns (NaN = empty cell).

  'plain': our header names, every value a number. 'prolab': Pro Lab's unit-bracketed headers,
  recording time in μs, validity and movement type as text, and rows of another sensor.
  """
  if style == "plain":
    table = pd.DataFrame(rows, columns=list(eye_export.COLUMNS))
    table.insert(0, "Sensor", "Eye Tracker")
  else:
    cols = {h: rows[:, j] for j, h in enumerate(eye_export.PROLAB_HEADERS)}
    cols[eye_export.PROLAB_HEADERS[0]] = np.round(rows[:, 0] * 1000)
    for j in (16, 17):
      cols[eye_export.PROLAB_HEADERS[j]] = np.where(rows[:, j] > 0, "Valid", "Invalid")
    names = {v: k for k, v in eye_export.MOVEMENT_CODES.items()}
    cols[eye_export.PROLAB_HEADERS[34]] = [names[int(c)] for c in rows[:, 34]]
    table = pd.DataFrame(cols)
    table.insert(0, "Sensor", "Eye Tracker")
    other = pd.DataFrame(
      {
        "Sensor": "Mouse",
        eye_export.PROLAB_HEADERS[0]: table.iloc[::OTHER_SENSOR_EVERY, 1].to_numpy() + 1,
      }
    )
    other.index = table.index[::OTHER_SENSOR_EVERY] + 0.5
    table = pd.concat([table, other]).sort_index().reset_index(drop=True)
  table.insert(0, "Recording name", sample_id)
  table.insert(0, "Participant name", f"P{subject_id:03d}")
  return table


def write_eye(path: pathlib.Path, table: pd.DataFrame, decimal: str = ".") -> None:
  """Writes a sheet as `.xlsx` (openpyxl, write-only), `.tsv` or `.csv` (`;` with decimal commas)."""
  if path.suffix == ".xlsx":
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    sheet.append(list(table.columns))
    for row in table.itertuples(index=False):
      sheet.append([None if isinstance(v, float) and v != v else v for v in row])
    book.save(path)
    return
  sep = "\t" if path.suffix == ".tsv" else ";" if decimal == "," else ","
  table.to_csv(path, sep=sep, index=False, na_rep="", decimal=decimal)


def write_video(path: pathlib.Path, frames: np.ndarray, fps: float = 30.0) -> None:
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


def manifest_entry(lab, eye_rows: np.ndarray, frames: int) -> dict:
  """What the sample must build into: labels, fold, eye rows and per-column sums of `eye`."""
  eye = eye_export.fill_invalid(eye_rows)
  return {
    "sample_id": lab.sample_id,
    "subject_id": lab.subject_id,
    "fold": lab.fold,
    **{
      f.name: int(getattr(lab, f.name)) if f.is_class else float(getattr(lab, f.name))
      for f in LABEL_FIELDS
    },
    "eye_rows": len(eye),
    "eye_column_sums": eye.astype(np.float64).sum(0).tolist(),
    "eye_sha256": hashlib.sha256(eye.tobytes()).hexdigest(),
    "face_frames": frames,
  }


_WORKER = {}


def _init_worker(out, cfg, frames_per_clip, eye_format, faces, style):
  _WORKER.update(
    out=pathlib.Path(out),
    sim=EmerSim(cfg),
    frames=frames_per_clip,
    eye_format=eye_format,
    faces=faces,
    style=style,
  )


def _write_sample(index: int) -> dict:
  w = _WORKER
  out, sim = w["out"], w["sim"]
  lab = sim.samples[index]
  raw = sim.sample(lab.index, w["frames"])
  rows = as_written(raw.eye, w["style"])
  table = eye_table(lab.sample_id, lab.subject_id, rows, w["style"])
  write_eye(out / layout.EYE_DIR / f"{lab.sample_id}.{w['eye_format']}", table)
  if w["faces"] in ("frames", "both"):
    folder = out / layout.FACE_FRAMES_DIR / lab.sample_id
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(raw.frames):
      cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  if w["faces"] in ("video", "both"):
    write_video(out / layout.FACE_VIDEO_DIR / f"{lab.sample_id}.mp4", raw.frames)
  return manifest_entry(lab, rows, len(raw.frames))


def write_release(
  output,
  cfg: SimConfig,
  *,
  frames_per_clip: int = 32,
  eye_format: str = "xlsx",
  faces: str = "frames",
  header_style: str = "prolab",
  workers: int = 1,
  progress: bool = True,
) -> EmerSim:
  """Writes the release of `cfg` under `output`; returns the simulator for comparisons.

  faces: 'frames' (aligned JPEG frames), 'video' (mp4 only) or 'both'. Also writes
  `manifest.json`: per sample, what the `real` build must produce from it.
  """
  out = pathlib.Path(output)
  for sub in (layout.EYE_DIR, layout.FACE_FRAMES_DIR, layout.FACE_VIDEO_DIR):
    (out / sub).mkdir(parents=True, exist_ok=True)
  sim = EmerSim(cfg)
  entries = parallel.ordered_map(
    _write_sample,
    range(len(sim.samples)),
    workers,
    initializer=_init_worker,
    initargs=(str(out), cfg, frames_per_clip, eye_format, faces, header_style),
  )
  bar = tqdm(
    entries,
    total=len(sim.samples),
    desc="writing fake release",
    unit="sample",
    disable=not progress,
  )
  manifest = {"samples": list(bar)}
  label_table(sim.samples).to_excel(out / layout.LABEL_FILE, index=False)
  lines = [f"{s.sample_id} set{s.fold}" for s in sim.samples]
  (out / layout.SET_FILE).write_text("\n".join(lines) + "\n")
  (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
  return sim


MANIFEST = "manifest.json"


def written(output) -> list[str]:
  """One line per thing a release folder holds, and where."""
  out = pathlib.Path(output)
  lines = []
  for sub, what in (
    (layout.EYE_DIR, "eye exports"),
    (layout.FACE_FRAMES_DIR, "face frame folders"),
    (layout.FACE_VIDEO_DIR, "face videos"),
  ):
    n = sum(1 for _ in (out / sub).iterdir()) if (out / sub).is_dir() else 0
    if n:
      lines.append(f"wrote {out / sub}/ ({n} {what})")
  for name in (layout.LABEL_FILE, layout.SET_FILE, MANIFEST):
    lines.append(f"wrote {out / name}")
  return lines


def main(argv):
  del argv
  f = flags.FLAGS
  scale = SCALES[f.scale]
  cfg = scale.sim
  if f.num_subjects is not None:
    cfg = dataclasses.replace(
      cfg, num_subjects=f.num_subjects, num_samples=f.num_samples or 10 * f.num_subjects
    )
  elif f.num_samples is not None:
    cfg = dataclasses.replace(cfg, num_samples=f.num_samples)
  cfg = dataclasses.replace(cfg, seed=cfg.seed if f.seed is None else f.seed)
  write_release(
    f.output,
    cfg,
    frames_per_clip=f.frames_per_clip or scale.frames_per_clip,
    eye_format=f.eye_format,
    faces=f.faces or scale.faces,
    header_style=f.header_style,
    workers=f.workers or parallel.default_workers(cfg.num_samples),
  )
  print("\n".join(written(f.output)))


if __name__ == "__main__":
  flags.DEFINE_string("output", None, "Folder to write the release into.", required=True)
  flags.DEFINE_enum("scale", "small", sorted(SCALES), "Size: ci (tiny), small, paper (1,303).")
  flags.DEFINE_integer("num_subjects", None, "Number of subjects (overrides the scale).")
  flags.DEFINE_integer("num_samples", None, "Number of samples (default 10 per subject).")
  flags.DEFINE_integer("seed", None, "EMER-Sim seed (default: the scale's).")
  flags.DEFINE_integer("frames_per_clip", None, "Face frames written per sample.")
  flags.DEFINE_enum("eye_format", "xlsx", ["xlsx", "tsv", "csv"], "Eye export format.")
  flags.DEFINE_enum("header_style", "prolab", ["prolab", "plain"], "Eye export header style.")
  flags.DEFINE_enum("faces", None, ["frames", "video", "both"], "Face modality form.")
  flags.DEFINE_integer("workers", None, "Writer processes (default: every core).")
  logs.run(main)
