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
from absl import app, flags

from emer_jax import cli, logs, paths
from emer_jax.predict import model as model_lib
from emer_jax.predict import report
from emer_jax.predict.model import input_specs

__all__ = ["export_model", "input_specs"]


def export_model(loaded: model_lib.Model, output: str) -> tuple[str, str]:
  """Writes `output`/model.jax and `output`/preprocessing.json; returns their paths."""
  graphdef, states, settings = loaded.graphdef, loaded.states, loaded.settings

  def outputs(batch):
    return model_lib.mean_outputs(
      graphdef, states, batch, settings.targets, loaded.dtype, renorm=loaded.renorm
    )

  logs.phase("compiling the model for export (jax.export, symbolic batch size)")
  exported = jax.export.export(jax.jit(outputs))(input_specs(settings))
  os.makedirs(output, exist_ok=True)
  path = os.path.join(output, model_lib.EXPORTED_FILE)
  with open(path, "wb") as f:
    f.write(exported.serialize())
  settings_path = os.path.join(output, model_lib.SETTINGS_FILE)
  with open(settings_path, "w") as f:
    json.dump(settings.to_json() | {"source": loaded.source}, f, indent=2)
  return path, settings_path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  paths.check_writable_dir(f.output, "--output")
  loaded = model_lib.from_workdir(f.workdir, f.run, f.data_dir, f.allow_unfinished)
  model, settings = export_model(loaded, f.output)
  logs.wrote("model", model, report.source_note(loaded.source))
  logs.wrote("preprocessing", settings, "frames, rows, normalisation, channel order, screen")


if __name__ == "__main__":  # flags defined here only, so that importing this module defines none
  cli.define_path("workdir", None, "Training workdir.")
  flags.DEFINE_string("run", "", "One run only, e.g. fold1_seed0 (default: all, averaged).")
  flags.DEFINE_bool("allow_unfinished", False, "Export a run whose training did not finish.")
  cli.define_path("output", None, "Folder to write model.jax and preprocessing.json.")
  cli.define_path("data_dir", "", "TFDS data_dir, if not the one the run used.")
  flags.mark_flags_as_required(["workdir", "output"])
  cli.run(main)
