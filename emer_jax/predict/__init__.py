"""Predicts ER and FER from raw recordings: a face video (or aligned frames) and an eye export.

  python -m emer_jax.predict --workdir=RUN --video=FACE.mp4 --eye_export=EYE.tsv --output=OUT.json
  python -m emer_jax.predict --workdir=RUN --input_dir=RECORDINGS --output=OUT.json

See README.md, "Predict on your own recordings", for every option and the report's layout.
"""

import pathlib

from emer_jax.predict import model, picture, recordings, report
from emer_jax.predict.model import from_checkpoint, from_exported, from_workdir
from emer_jax.predict.recordings import Recording, find_recordings

__all__ = [
  "Recording",
  "find_recordings",
  "from_checkpoint",
  "from_exported",
  "from_workdir",
  "predict",
]


def predict(loaded_model, recs, output, mapping=None, draw=True) -> list[dict]:
  """Predicts every recording, writes OUT.json, OUT.csv and OUT_<id>.png; returns the entries."""
  function = loaded_model.function()
  settings = loaded_model.settings
  pathlib.Path(output).parent.mkdir(parents=True, exist_ok=True)
  results = []
  for rec in recs:
    loaded = recordings.load(rec, settings, mapping)
    outputs = function(model.batch_of(loaded.inputs))
    entry = report.result_entry(loaded.info, outputs)
    results.append(entry)
    if draw:
      picture.draw(report.picture_path(output, rec.id), loaded, entry, settings.screen_px)
  report.write(output, results, loaded_model.source)
  return results
