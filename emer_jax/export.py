"""Writes a trained model's inference function as a serialised `jax.export` artefact.

  python -m emer_jax.export --workdir=RUN --output=DIR [--run=fold1_seed0]

DIR/model.jax is the function from a batch of model inputs (`face` (B, T, 112, 112, 3) uint8,
`eye` (B, R, 39), `gaze` (B, R, 2), `fixation_map` (B, 64, 64, 1), float32) to
{target: (B, C) class probabilities or (B,) values}, averaged over the workdir's runs (or
`--run`'s), weights included; the batch size B is symbolic. DIR/preprocessing.json holds what
turns a recording into those inputs (frames, rows, normalisation, channel order). Run it with
`python -m emer_jax.predict --exported=DIR`, or in any JAX program with
`jax.export.deserialize(open("DIR/model.jax", "rb").read()).call(batch)`, without emer_jax's
model code.
"""

import json
import os

import jax
import numpy as np
from absl import app, flags, logging

from emer_jax import cli
from emer_jax.predict import model as model_lib
from tfds_emer.eye_export import MAP_SIZE


def input_specs(settings: model_lib.Settings, batch="b") -> dict:
  """Shapes and dtypes of a batch of model inputs; `batch` may be a symbolic dimension."""
  (b,) = jax.export.symbolic_shape(batch) if isinstance(batch, str) else (batch,)
  s, size = settings.sampler, settings.face_size
  rows = s.num_eye_rows
  return {
    "face": jax.ShapeDtypeStruct((b, s.num_frames, size, size, 3), np.uint8),
    "eye": jax.ShapeDtypeStruct((b, rows, _eye_width(s)), np.float32),
    "gaze": jax.ShapeDtypeStruct((b, rows, len(s.normalisation.gaze_mean)), np.float32),
    "fixation_map": jax.ShapeDtypeStruct((b, MAP_SIZE, MAP_SIZE, 1), np.float32),
  }


def _eye_width(sampler) -> int:
  return (
    len(sampler.clocks) if sampler.eye_columns == "clocks" else len(sampler.normalisation.eye_mean)
  )


def export_model(loaded: model_lib.Model, output: str) -> str:
  """Writes `output`/model.jax and `output`/preprocessing.json; returns the artefact's path."""
  graphdef, states, settings = loaded.graphdef, loaded.states, loaded.settings

  def outputs(batch):
    return model_lib.mean_outputs(
      graphdef, states, batch, settings.targets, loaded.dtype, renorm=loaded.renorm
    )

  exported = jax.export.export(jax.jit(outputs))(input_specs(settings))
  os.makedirs(output, exist_ok=True)
  path = os.path.join(output, model_lib.EXPORTED_FILE)
  with open(path, "wb") as f:
    f.write(exported.serialize())
  with open(os.path.join(output, model_lib.SETTINGS_FILE), "w") as f:
    json.dump(settings.to_json() | {"source": loaded.source}, f, indent=2)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  loaded = model_lib.from_workdir(f.workdir, f.run, f.data_dir)
  print(f"Wrote {export_model(loaded, f.output)} ({', '.join(loaded.source['runs'])}).")


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_string("run", "", "One run only, e.g. fold1_seed0 (default: all, averaged).")
  flags.DEFINE_string("output", None, "Folder to write model.jax and preprocessing.json.")
  flags.DEFINE_string("data_dir", "", "TFDS data_dir, if not the one the run used.")
  flags.mark_flags_as_required(["workdir", "output"])
  cli.run(main)
