"""python -m emer_jax.predict: see emer_jax/predict/__init__.py and README.md."""

import json
import pathlib
import sys

from absl import app, flags

from emer_jax import cli
from tfds_emer.release import ReleaseError

_WORKDIR = cli.define_path("workdir", None, "Training workdir: every run's selected model.")
_RUN = flags.DEFINE_string("run", "", "With --workdir, one run only, e.g. fold1_seed0.")
_ALLOW_UNFINISHED = flags.DEFINE_bool(
  "allow_unfinished", False, "With --workdir: use runs whose training did not finish."
)
_CHECKPOINT = cli.define_path(
  "checkpoint", None, "Model checkpoint folder: model/ and config.json (emer_jax.convert)."
)
_EXPORTED = cli.define_path("exported", None, "Folder written by emer_jax.export.")
_DATASET = flags.DEFINE_string(
  "dataset",
  "emer/real",
  "With --checkpoint: the dataset the model was trained on (its face frames per sample).",
)
_DATA_DIR = cli.define_path("data_dir", "", "TFDS data_dir of that dataset.")
_CHANNEL_ORDER = flags.DEFINE_enum(
  "channel_order", "rgb", ["rgb", "bgr"], "With --checkpoint: 'bgr' for the authors' models."
)
_VIDEO = cli.define_path("video", None, "Face video of one recording (raw webcam video).")
_FRAMES = cli.define_path("frames", None, "Folder of aligned face frames of one recording.")
_EYE = cli.define_path(
  "eye_export",
  None,
  "Eye-tracker export: Tobii Pro Lab .tsv, .csv or .xlsx; for a model trained on a study, a file "
  "or folder of any supported format (detected from its content).",
)
_ID = flags.DEFINE_string("id", "", "ID of the one recording (default: the export's name).")
_INPUT_DIR = cli.define_path("input_dir", None, "Folder of recordings matched by ID.")
_MAPPING = cli.define_path(
  "mapping",
  None,
  "JSON as emer_mapping.json: eye_columns, gaze_columns, screen_px; for a study's model, "
  "screen_px and formats ({format: options}) as in study.json.",
)
_OUTPUT = cli.define_path("output", None, "Report OUT.json (OUT.csv, OUT_<id>.png beside).")
_PICTURE = flags.DEFINE_bool("picture", True, "Write OUT_<id>.png per recording.")


def _model():
  from emer_jax import predict

  sources = [s for s in (_WORKDIR.value, _CHECKPOINT.value, _EXPORTED.value) if s]
  if len(sources) != 1:
    raise app.UsageError("Give exactly one of --workdir, --checkpoint, --exported.")
  if _WORKDIR.value:
    return predict.from_workdir(
      _WORKDIR.value, _RUN.value, _DATA_DIR.value, _ALLOW_UNFINISHED.value
    )
  if _CHECKPOINT.value:
    return predict.from_checkpoint(
      _CHECKPOINT.value, _DATASET.value, _DATA_DIR.value, _CHANNEL_ORDER.value
    )
  return predict.from_exported(_EXPORTED.value)


def _recordings():
  from emer_jax import predict

  if _INPUT_DIR.value:
    if _VIDEO.value or _FRAMES.value or _EYE.value:
      raise app.UsageError("--input_dir excludes --video, --frames and --eye_export.")
    return predict.find_recordings(_INPUT_DIR.value)
  if not _EYE.value or bool(_VIDEO.value) == bool(_FRAMES.value):
    raise app.UsageError("Give --eye_export and one of --video, --frames (or --input_dir).")
  eye = pathlib.Path(_EYE.value)
  for path in (eye, pathlib.Path(_VIDEO.value or _FRAMES.value)):
    if not path.exists():
      raise predict.recordings.RecordingError([f"{path}: no such file or folder."])
  return [
    predict.Recording(
      _ID.value or eye.stem,
      eye,
      video=pathlib.Path(_VIDEO.value) if _VIDEO.value else None,
      frames=pathlib.Path(_FRAMES.value) if _FRAMES.value else None,
    )
  ]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from emer_jax import paths, predict

  paths.check_writable_file(_OUTPUT.value, "--output")
  mapping = json.loads(pathlib.Path(_MAPPING.value).read_text()) if _MAPPING.value else {}
  try:
    recs = _recordings()
    results = predict.predict(_model(), recs, _OUTPUT.value, mapping, draw=_PICTURE.value)
  except (ReleaseError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  for r in results:
    summary = {t: h.get("predicted", h.get("value")) for t, h in r["heads"].items()}
    print(json.dumps({"id": r["id"], **summary, "gap": r["gap"]}))


if __name__ == "__main__":
  flags.mark_flags_as_required(["output"])
  cli.run(main)
