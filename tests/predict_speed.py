"""Times predicting one 10-s recording (300 frames 640×480, 1,470 eye rows), model loaded.

  python tests/predict_speed.py WORKDIR DATA_DIR OUT_DIR

WORKDIR: a training workdir on emer/synthetic_small built in DATA_DIR; the recording (the
astronaut moving over 300 frames, a sample's eye rows tiled to 1,470) is written to OUT_DIR.
Face detection, cropping, the export parser, the model and the report and picture are timed.
"""

import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recording_testing import astronaut_frames, write_video

from emer_jax import predict
from emer_jax.data.source import open_source
from emer_jax.predict import recordings, samples

workdir, data_dir, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
data = open_source("emer/synthetic_small", data_dir, prepare=False)
ex = dict(data.source[0])
reps = -(-1470 // len(ex["eye"]))
eye = np.tile(ex["eye"], (reps, 1))[:1470].copy()
eye[:, 0] = np.arange(1470) * (10_000 / 1470)
ex["eye"] = eye
rec = samples.write_recording(ex, out, "P01")
frames, _, _ = astronaut_frames(300, size=(640, 480))
write_video(out / "P01.mp4", frames)
rec = recordings.Recording("P01", rec.eye_export, video=out / "P01.mp4")
model = predict.from_workdir(workdir)
predict.predict(model, [rec], out / "warm.json")  # compiles
for k in range(3):
  t, c = time.perf_counter(), time.process_time()
  (entry,) = predict.predict(model, [rec], out / "OUT.json")
  print(
    f"run {k}: wall {time.perf_counter() - t:.2f} s, CPU {time.process_time() - c:.2f} s,",
    os.getloadavg(),
    entry["frames_total"],
    entry["frames_with_face"],
    entry["eye_rows_total"],
  )
