"""Predicts ER and FER from raw recordings: a face video (or aligned frames) and an eye export.

  python -m emer_jax.predict --workdir=RUN --video=FACE.mp4 --eye_export=EYE.tsv --output=OUT.json
  python -m emer_jax.predict --workdir=RUN --input_dir=RECORDINGS --output=OUT.json

See README.md, "Predict on your own recordings", for every option and the report's layout.
"""

import pathlib

from emer_jax import logs
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
  settings = loaded_model.settings
  logs.phase("compiling the model")
  function = loaded_model.compiled()
  pathlib.Path(output).parent.mkdir(parents=True, exist_ok=True)
  results, pictures = [], []
  with logs.progress(len(recs), "predicting recordings", unit="recording") as bar:
    for rec in recs:
      loaded = recordings.load(rec, settings, mapping)
      outputs = function(model.batch_of(loaded.inputs))
      entry = report.result_entry(loaded.info, outputs)
      results.append(entry)
      if draw:
        pictures.append(report.picture_path(output, rec.id))
        picture.draw(pictures[-1], loaded, entry, loaded.screen or settings.screen_px)
      bar.update()
  report.write(output, results, loaded_model.source)
  logs.wrote("predictions", output, report.source_note(loaded_model.source))
  logs.wrote("table", report.csv_path(output))
  for path in pictures:
    logs.wrote("picture", path)
  return results
