"""Writes a study folder from EMER-Sim samples: for tests and the README's worked example.

  python -m tfds_emer.fake_study --output=STUDY [--recordings=16] [--subjects=4] [--frames=32]
      [--seconds=3] [--eye_rate=50] [--faces=mixed|video|frames] [--trackers=tobii,gazepoint]
      [--given_folds] [--seed=0]

Each recording gets an eye file in one of `--trackers`' formats in turn (Tobii Pro Lab TSV as
`fake_release` writes it, Gazepoint Analysis `all_gaze` CSV), and a face clip: a raw video
(mp4, the face drawn on a larger background, so that face detection finds and crops it) or a
folder of aligned face frames (`--faces=mixed` alternates). labels.csv holds the study's own
labels: `emotion` (the felt emotion, text classes) and `valence` (a number).
"""

import dataclasses
import json
import pathlib

import cv2
import numpy as np
import pandas as pd
from absl import flags

from tfds_emer import eye_export, fake_release, logs
from tfds_emer.sim.config import SimConfig
from tfds_emer.sim.samples import EmerSim
from tfds_emer.study import layout
from tfds_emer.vocabulary import EMOTIONS

TRACKERS = ("tobii", "gazepoint")
SUFFIXES = {"tobii": ".tsv", "gazepoint": ".csv"}
CANVAS = (320, 240)  # raw video frame (width, height); the 112-px face sits inside it
_COL = {name: j for j, name in enumerate(eye_export.COLUMNS)}


def gazepoint_table(rows: np.ndarray, screen) -> pd.DataFrame:
  """An EMER-Sim export (39 Tobii columns) as Gazepoint Analysis writes `*_all_gaze.csv`:
  TIME in seconds, points of gaze as fractions of the screen with validity flags, fixation
  start/duration/id, pupils in camera pixels and millimetres, blink id and duration."""
  n = len(rows)
  t = rows[:, _COL["Recording timestamp"]] / 1000
  gx = rows[:, _COL["Gaze point X"]] / screen[0]
  gy = rows[:, _COL["Gaze point Y"]] / screen[1]
  seen = np.isfinite(gx) & np.isfinite(gy)
  code = rows[:, _COL["Eye movement type code"]]
  fixating = code == eye_export.FIXATION
  run = np.concatenate([[0], np.cumsum(code[1:] != code[:-1])])  # one id per event run
  fix_id = np.zeros(n)
  fix_start, fix_dur = np.zeros(n), np.zeros(n)
  fx, fy = np.zeros(n), np.zeros(n)
  last = (0.0, 0.0, 0.0, 0.0, 0)  # Gazepoint repeats the last fixation, flagged invalid
  ids = {}
  for i in range(n):
    if fixating[i]:
      ids.setdefault(run[i], len(ids) + 1)
      first = np.flatnonzero(run == run[i])[0]
      last = (
        rows[i, _COL["Fixation point X"]] / screen[0],
        rows[i, _COL["Fixation point Y"]] / screen[1],
        t[first],
        t[i] - t[first],
        ids[run[i]],
      )
    fx[i], fy[i], fix_start[i], fix_dur[i], fix_id[i] = last
  lost = code == eye_export.EYES_NOT_FOUND
  blink_runs = {r: k + 1 for k, r in enumerate(dict.fromkeys(run[lost]))}
  blink_id = np.array([blink_runs.get(r, 0) if lost[i] else 0 for i, r in enumerate(run)])
  blink_dur = np.array(
    [rows[i, _COL["Gaze event duration"]] / 1000 if lost[i] else 0 for i in range(n)]
  )
  table = {
    "MEDIA_ID": 0,
    "MEDIA_NAME": "stimulus",
    "CNT": np.arange(n),
    "TIME(2026/12/04 10:00:00.000)": np.round(t, 5),
    "TIMETICK(f=10000000)": np.round(t * 1e7).astype(np.int64),
    "FPOGX": fx,
    "FPOGY": fy,
    "FPOGS": fix_start,
    "FPOGD": fix_dur,
    "FPOGID": fix_id.astype(int),
    "FPOGV": fixating.astype(int),
    "BPOGX": np.where(seen, gx, 0.0),
    "BPOGY": np.where(seen, gy, 0.0),
    "BPOGV": seen.astype(int),
  }
  for side, tobii in (("L", "left"), ("R", "right")):
    mm = rows[:, _COL[f"Pupil diameter {tobii}"]]
    valid = np.isfinite(mm) & (rows[:, _COL[f"Validity {tobii}"]] > 0)
    table[f"{side}PD"] = np.where(valid, mm * 8.0, 0.0)  # the eye camera's pixels
    table[f"{side}PS"] = 1.0
    table[f"{side}PV"] = valid.astype(int)
    table[f"{side}PMM"] = np.where(valid, mm, 0.0)
    table[f"{side}PMMV"] = valid.astype(int)
  table["BKID"] = blink_id
  table["BKDUR"] = np.round(blink_dur, 5)
  table["BKPMIN"] = 0
  frame = pd.DataFrame(table)
  return frame.round({c: 5 for c in ("FPOGX", "FPOGY", "FPOGS", "FPOGD", "BPOGX", "BPOGY")})


def raw_video_frames(faces_rgb: np.ndarray, index: int) -> np.ndarray:
  """The aligned faces drawn on a larger, lit background, drifting slowly: a raw recording."""
  w, h = CANVAS
  size = faces_rgb.shape[1]
  out = np.empty((len(faces_rgb), h, w, 3), np.uint8)
  ramp = np.linspace(60, 140, w, dtype=np.float32)
  background = np.stack([np.tile(ramp, (h, 1))] * 3, -1).astype(np.uint8)
  for k, face in enumerate(faces_rgb):
    dx = int(round(20 * np.sin(2 * np.pi * (k / max(len(faces_rgb), 1) + index / 7))))
    x0, y0 = (w - size) // 2 + dx, (h - size) // 2
    out[k] = background
    out[k, y0 : y0 + size, x0 : x0 + size] = face
  return out


@dataclasses.dataclass(frozen=True)
class Plan:
  recordings: int = 16
  subjects: int = 4
  frames: int = 32
  seconds: float = 3.0
  eye_rate: float = 50.0
  faces: str = "mixed"  # video, frames or mixed (alternating)
  trackers: tuple[str, ...] = TRACKERS
  given_folds: bool = False
  seed: int = 0


def write_study(output, plan: Plan) -> list[str]:
  """Writes the study; returns one line per thing written."""
  out = pathlib.Path(output)
  cfg = SimConfig(
    seed=plan.seed,
    num_subjects=plan.subjects,
    num_samples=plan.recordings,
    eye_rate_hz=plan.eye_rate,
    clip_seconds=(plan.seconds, plan.seconds),
  )
  sim = EmerSim(cfg)
  for sub in (layout.EYE_DIR, layout.VIDEO_DIR, layout.FRAMES_DIR):
    (out / sub).mkdir(parents=True, exist_ok=True)
  rows, counts = [], {"video": 0, "frames": 0, **{t: 0 for t in plan.trackers}}
  for k, lab in enumerate(sim.samples):
    rid = f"p{lab.subject_id:02d}_r{k:03d}"
    raw = sim.sample(lab.index, plan.frames)
    tracker = plan.trackers[k % len(plan.trackers)]
    eye = out / layout.EYE_DIR / f"{rid}{SUFFIXES[tracker]}"
    if tracker == "tobii":
      table = fake_release.eye_table(
        rid, lab.subject_id, fake_release.as_written(raw.eye, "prolab")
      )
      fake_release.write_eye(eye, table)
    else:
      gazepoint_table(raw.eye, cfg.screen_px).to_csv(eye, index=False)
    counts[tracker] += 1
    t = raw.eye[:, _COL["Recording timestamp"]]
    seconds = (t[-1] - t[0]) / 1000 + 1 / plan.eye_rate  # the clip spans the eye data
    kind = plan.faces if plan.faces != "mixed" else ("video", "frames")[k % 2]
    if kind == "video":
      fps = len(raw.frames) / seconds
      frames = raw_video_frames(raw.frames, k)
      fake_release.write_video(out / layout.VIDEO_DIR / f"{rid}.mp4", frames, fps)
    else:
      folder = out / layout.FRAMES_DIR / rid
      folder.mkdir(exist_ok=True)
      for i, frame in enumerate(raw.frames):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    counts[kind] += 1
    row = {"id": rid, "subject": f"P{lab.subject_id:02d}"}
    if plan.given_folds:
      row["fold"] = lab.subject_id % layout.NUM_FOLDS + 1  # subject-grouped
    rows.append(row | {"emotion": EMOTIONS[lab.er_emotion], "valence": round(lab.er_valence, 4)})
  pd.DataFrame(rows).to_csv(out / layout.LABEL_FILE, index=False)
  settings = {
    "name": out.resolve().name,
    "classes": {"emotion": list(EMOTIONS)},
    "screen_px": list(cfg.screen_px),
    # Frame folders hold a clip's frames over its whole duration.
    "frame_rate": round(plan.frames / plan.seconds, 6),
  }
  (out / layout.SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")
  return [
    f"wrote {out / layout.EYE_DIR}/ ("
    + ", ".join(f"{counts[t]} {t}" for t in plan.trackers)
    + " eye files)",
    f"wrote {out / layout.VIDEO_DIR}/ ({counts['video']} face videos)",
    f"wrote {out / layout.FRAMES_DIR}/ ({counts['frames']} face frame folders)",
    f"wrote {out / layout.LABEL_FILE} ({len(rows)} recordings of {plan.subjects} subjects)",
    f"wrote {out / layout.SETTINGS_FILE}",
  ]


def main(argv):
  del argv
  f = flags.FLAGS
  trackers = tuple(t.strip() for t in f.trackers.split(","))
  unknown = [t for t in trackers if t not in TRACKERS]
  if unknown:
    raise SystemExit(f"--trackers: unknown {unknown}; expected some of {list(TRACKERS)}.")
  plan = Plan(
    recordings=f.recordings,
    subjects=f.subjects,
    frames=f.frames,
    seconds=f.seconds,
    eye_rate=f.eye_rate,
    faces=f.faces,
    trackers=trackers,
    given_folds=f.given_folds,
    seed=f.seed,
  )
  try:
    lines = write_study(f.output, plan)
  except ValueError as e:  # EMER-Sim's check of recordings per subject
    raise SystemExit(f"fake_study: {e}") from None
  print("\n".join(lines))


if __name__ == "__main__":
  flags.DEFINE_string("output", None, "Folder to write the study into.", required=True)
  flags.DEFINE_integer("recordings", 16, "Recordings in the study.")
  flags.DEFINE_integer("subjects", 4, "Subjects (at most 14 recordings each).")
  flags.DEFINE_integer("frames", 32, "Face frames per recording.")
  flags.DEFINE_float("seconds", 3.0, "Duration of each recording in seconds.")
  flags.DEFINE_float("eye_rate", 50.0, "Eye-tracker sampling rate in Hz.")
  flags.DEFINE_enum(
    "faces", "mixed", ["mixed", "video", "frames"], "Face videos, frame folders or both."
  )
  flags.DEFINE_string("trackers", ",".join(TRACKERS), "Eye-file formats, used in turn.")
  flags.DEFINE_bool("given_folds", False, "Write a fold column (subject-grouped folds).")
  flags.DEFINE_integer("seed", 0, "EMER-Sim seed.")
  logs.run(main)
