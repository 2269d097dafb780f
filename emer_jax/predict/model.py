"""A trained model as a function from model inputs to ER/FER outputs, and what it expects.

Sources: a training workdir (every run's selected checkpoint, their class probabilities
averaged, or one run), a model checkpoint with its config (`python -m emer_jax.convert`), or a
serialised `jax.export` artefact (`python -m emer_jax.export`), which needs no model code.
"""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tensorflow_datasets as tfds
from flax import nnx

from emer_jax import config as config_lib
from emer_jax import logs, models
from emer_jax import sweep as sweep_lib
from emer_jax import workdir as workdir_lib
from emer_jax.data import pipeline
from emer_jax.data.source import EmerSource, resolve_data_dir
from emer_jax.errors import UserError
from emer_jax.protocols import TARGETS, head_sizes, use_labels
from emer_jax.train import steps
from emer_jax.train.checkpoint import restore_model
from tfds_emer import eye_export
from tfds_emer.eye_export import MAP_SIZE

NORMALISATION_FILE = "normalisation.json"  # beside a converted checkpoint: its statistics
FACE_SIZE = 112


@dataclasses.dataclass(frozen=True)
class Settings:
  """What turns a recording into model inputs, as the dataset build and evaluation do."""

  sampler: pipeline.ClipSampler  # the evaluation sampler: segment centres, normalisation
  face_frames: int  # face frames the dataset keeps per sample
  targets: tuple[str, ...]  # the model's heads
  screen_px: tuple[int, int] = eye_export.SCREEN_PX
  face_size: int = FACE_SIZE

  def to_json(self) -> dict:
    s = self.sampler
    return {
      "face_frames": self.face_frames,
      "face_size": self.face_size,
      "screen_px": list(self.screen_px),
      "targets": list(self.targets),
      "labels": {t: TARGETS[t].to_label() for t in self.targets},
      "num_frames": s.num_frames,
      "num_eye_rows": s.num_eye_rows,
      "channel_order": "bgr" if s.bgr else "rgb",
      "eye_columns": s.eye_columns,
      "normalisation": s.normalisation.to_dict(),
    }

  @classmethod
  def from_json(cls, d: dict) -> "Settings":
    config = ml_collections.ConfigDict(
      {
        "input": {
          "num_frames": d["num_frames"],
          "num_eye_rows": d["num_eye_rows"],
          "channel_order": d["channel_order"],
          "flip": False,
        },
        "model": {
          "eye_clocks": d["normalisation"]["eye_clocks"],
          "eye_columns": d["eye_columns"],
        },
      }
    )
    use_labels(d.get("labels"))  # the targets' kinds and class names (a study's own)
    return cls(
      sampler=_sampler(config, pipeline.Normalisation.from_dict(d["normalisation"])),
      face_frames=int(d["face_frames"]),
      targets=tuple(d["targets"]),
      screen_px=tuple(d["screen_px"]),
      face_size=int(d["face_size"]),
    )


def _sampler(config, norm: pipeline.Normalisation) -> pipeline.ClipSampler:
  """The evaluation pipeline's sampler for `config`, normalising with `norm`. Eye exports are
  read onto the columns the model was trained on (EMER's 39 or the tracker schema's 22, told
  apart by their number), so the clock columns are found by their names."""
  data = EmerSource(None, {}, {}, normalisation=norm)
  return pipeline.clip_sampler(data, config, (), train=False)


def _affine(base: pipeline.Normalisation, run: pipeline.Normalisation) -> dict:
  """(scale, shift) per stream taking inputs normalised with `base` to `run`'s normalisation:
  x_run = x_base · std_base / std_run + (mean_base − mean_run) / std_run."""
  return {
    name: (
      getattr(base, f"{name}_std") / getattr(run, f"{name}_std"),
      (getattr(base, f"{name}_mean") - getattr(run, f"{name}_mean")) / getattr(run, f"{name}_std"),
    )
    for name in ("eye", "gaze")
  }


def face_frames_of(dataset: str, data_dir: str) -> int:
  """Face frames a sample of `dataset` holds (a study's, read from its files, says it there)."""
  builder = tfds.builder(dataset, data_dir=resolve_data_dir(data_dir))
  frames = getattr(builder.builder_config, "face_frames", None)
  return frames or builder.info.features["face"].shape[0]


def run_names(workdir: str) -> list[str]:
  """Runs of a workdir that have a selected checkpoint, e.g. ['fold1_seed0', ...] (a sweep's:
  those of the point selected per fold)."""
  root = workdir_lib.checkpoints_dir(workdir)
  names = sorted(os.listdir(root)) if os.path.isdir(root) else []
  selected = workdir_lib.selected_runs(workdir)
  return [
    n
    for n in names
    if os.path.isdir(os.path.join(workdir_lib.checkpoints_dir(workdir, n), "best"))
    and (selected is None or n in selected)
  ]


class UnfinishedRun(UserError):
  """A workdir's run has checkpoints but no finished record: its model is no result yet."""


def _last_step(directory: str) -> int | None:
  steps = ocp.utils.checkpoint_steps(directory) if os.path.isdir(directory) else []
  return max(steps) if steps else None


def _restore_best(run_dir: str, model: nnx.Module) -> tuple[nnx.State, int]:
  """The weights chosen on validation (`best/<step>/model`, as the trainer saved them) and
  their step; read in place, never tidying the user's run."""
  best = os.path.join(run_dir, "best")
  step = _last_step(best)
  if step is None:
    raise FileNotFoundError(
      f"{best} holds no checkpoint: the run has no selected model (was it trained with a "
      "validation part, and did it finish?)."
    )
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.join(best, str(step), "model"), nnx.state(model)), step


def _finished(workdir: str, run: str) -> bool:
  """Whether the run wrote its finished record, `W/runs/<run>.json` (workdir.finished_run)."""
  return os.path.exists(workdir_lib.run_json_path(workdir, *workdir_lib.parse_run_name(run)))


def unfinished_message(workdir: str, runs: list[str]) -> str:
  """One line naming each unfinished run and its last step, and the two ways on."""
  named = ", ".join(
    f"{r} (last checkpoint: step "
    f"{_last_step(os.path.join(workdir_lib.checkpoints_dir(workdir, r), 'latest'))}, best so far: "
    f"step {_last_step(os.path.join(workdir_lib.checkpoints_dir(workdir, r), 'best'))})"
    for r in runs
  )
  several = len(runs) > 1
  return (
    f"The run{'s' if several else ''} {named} in {workdir} did not finish training (no "
    f"{', '.join(f'runs/{r}.json' for r in runs)}). Rerun the training command on this workdir "
    f"to finish {'them' if several else 'it'}, or add --allow_unfinished to use the best "
    "checkpoint so far."
  )


@dataclasses.dataclass
class Model:
  """The model's graph, the weights of one or more runs, and its input settings."""

  graphdef: object
  states: list
  settings: Settings
  dtype: object = jnp.float32
  source: dict = dataclasses.field(default_factory=dict)  # what was loaded, for the report
  # Per run, `_affine` from the settings' normalisation to the run's own (None: all the same).
  renorm: list | None = None

  def function(self):
    """outputs(batch): {target: (B, C) class probabilities or (B,) values}, averaged over runs."""
    return functools.partial(self._jitted, self.states)

  def compiled(self):
    """`function()` compiled for a batch of one."""
    compiled = self._jitted.lower(self.states, input_specs(self.settings, 1)).compile()
    return functools.partial(compiled, self.states)

  @functools.cached_property
  def _jitted(self):
    return jax.jit(
      functools.partial(
        mean_outputs,
        self.graphdef,
        targets=self.settings.targets,
        dtype=self.dtype,
        renorm=self.renorm,
      )
    )


def mean_outputs(graphdef, states, batch, targets, dtype, renorm=None) -> dict:
  """Class probabilities (softmax) and regression values of each run, averaged over runs; run
  r's eye and gaze inputs are first taken to its own normalisation by `renorm[r]`."""
  per_run = []
  for r, state in enumerate(states):
    if renorm is not None:
      run_batch = {
        **batch,
        **{k: batch[k] * scale + shift for k, (scale, shift) in renorm[r].items()},
      }
    else:
      run_batch = batch
    model = nnx.merge(graphdef, state)
    model.eval()
    heads = model(steps.model_inputs(run_batch, dtype), grl_lambda=jnp.float32(0.0))["heads"]
    per_run.append(
      {
        t: jax.nn.softmax(heads[t].astype(jnp.float32))
        if TARGETS[t].kind == "classification"
        else heads[t].astype(jnp.float32)[..., 0]
        for t in targets
      }
    )
  return {t: jnp.mean(jnp.stack([o[t] for o in per_run]), axis=0) for t in targets}


def _build(model_config, heads: dict):
  return models.build_model(model_config, heads=heads, rngs=nnx.Rngs(0))


def from_workdir(
  workdir: str, run: str = "", data_dir: str = "", allow_unfinished: bool = False
) -> Model:
  """Every run's selected model (or `run`'s) of a training workdir. A run without its finished
  record is refused (`UnfinishedRun`) unless `allow_unfinished`; `source` names each run's
  checkpoint step and whether all runs finished."""
  from emer_jax.train.state import run_targets  # the trainer decides a run's heads

  workdir = os.path.abspath(workdir)
  config = workdir_lib.load_config(workdir)
  use_labels(config.get("labels"))  # a study's targets, as the run recorded them
  names = run_names(workdir)
  if run:
    if run not in names:
      raise FileNotFoundError(f"No run {run!r} in {workdir}/checkpoints; it has {names}.")
    names = [run]
  if not names:
    raise FileNotFoundError(f"{workdir}/checkpoints holds no run with a selected checkpoint.")
  unfinished = [n for n in names if not _finished(workdir, n)]
  if unfinished and not allow_unfinished:
    raise UnfinishedRun(unfinished_message(workdir, unfinished))
  config = selected_config(workdir, config, names)
  logs.phase(f"loading the model: {', '.join(names)} of {workdir}")
  targets = run_targets(config)
  model = _build(config.model, head_sizes(targets))
  states, run_steps = [], {}
  with logs.progress(len(names), "loading checkpoints", unit="run") as bar:
    for n in names:
      state, run_steps[n] = _restore_best(workdir_lib.checkpoints_dir(workdir, n), model)
      states.append(state)
      bar.update()
  data_dir = data_dir or config.data_dir
  norms = [pipeline.load_normalisation(_normalisation_path(workdir, n)) for n in names]
  settings = Settings(_sampler(config, norms[0]), face_frames_of(config.dataset, data_dir), targets)
  renorm = [_affine(norms[0], n) for n in norms] if len(norms) > 1 else None
  graphdef = nnx.graphdef(model)
  source = {"workdir": workdir, "runs": names, "steps": run_steps, "finished": not unfinished}
  dtype = jnp.dtype(config.dtype)
  return Model(graphdef, states, settings, dtype, source, renorm)


def selected_config(workdir: str, config, names: list[str]):
  """The config the runs `names` trained with: a sweep's point applied to the workdir's config.
  Runs of points that build different models cannot be averaged: one line asks for `--run`."""
  points = workdir_lib.sweep_points(workdir)
  if not points:
    return config
  configs = {
    n: sweep_lib.point_config(config, points, workdir_lib.parse_run_name(n)[2]) for n in names
  }
  models = {
    json.dumps(workdir_lib.config_json(c)["model"], sort_keys=True) for c in configs.values()
  }
  if len(models) > 1:
    raise UserError(
      f"The selected runs of {workdir} ({', '.join(names)}) are sweep points that build "
      "different models; predict with one of them: --run=NAME."
    )
  return configs[names[0]]


def _normalisation_path(workdir: str, run: str) -> str:
  """The statistics a run normalised its inputs with (`workdir.normalisation_path`)."""
  return workdir_lib.normalisation_path(workdir, *workdir_lib.parse_run_name(run))


def from_checkpoint(
  directory: str, dataset: str = "emer/real", data_dir: str = "", channel_order: str = ""
) -> Model:
  """A model checkpoint `directory`/model with `directory`/config.json (the model config and
  its `heads`), as `python -m emer_jax.convert` writes them."""
  directory = os.path.abspath(directory)
  path = os.path.join(directory, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"No config at {path}.")
  with open(path) as f:
    description = config_lib.from_json(json.load(f))
  if "heads" not in description:
    raise ValueError(f"{directory}/config.json has no 'heads' (target name → size).")
  heads = dict(description.heads)
  model_config = ml_collections.ConfigDict({k: v for k, v in description.items() if k != "heads"})
  model = restore_model(os.path.join(directory, "model"), _build(model_config, heads))
  config = ml_collections.ConfigDict(
    {
      "input": {
        "num_frames": model_config.face_encoder.num_frames,
        "num_eye_rows": model_config.sequence_length,
        "channel_order": channel_order or "rgb",
        "flip": False,
      },
      "model": {
        "eye_clocks": model_config.get("eye_clocks", "absolute"),
        "eye_columns": model_config.get("eye_columns", "all"),
      },
    }
  )
  norm = pipeline.load_normalisation(os.path.join(directory, NORMALISATION_FILE))
  settings = Settings(_sampler(config, norm), face_frames_of(dataset, data_dir), tuple(heads))
  graphdef, state = nnx.split(model)
  return Model(graphdef, [state], settings, source={"checkpoint": os.path.abspath(directory)})


@dataclasses.dataclass(frozen=True)
class Exported:
  """A `jax.export` artefact: the function and its settings, without the model's code."""

  call: object
  settings: Settings
  source: dict

  def function(self):
    return self.call

  def compiled(self):
    """`function()` compiled for a batch of one."""
    return jax.jit(self.call).lower(input_specs(self.settings, 1)).compile()


EXPORTED_FILE, SETTINGS_FILE = "model.jax", "preprocessing.json"


def from_exported(directory: str) -> Exported:
  """An `emer_jax.export` artefact; `source` is what it was exported from (steps, finished)."""
  directory = os.path.abspath(directory)
  path = os.path.join(directory, EXPORTED_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No exported model at {path}; write one with emer_jax.export.")
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  with open(os.path.join(directory, SETTINGS_FILE)) as f:
    recorded = json.load(f)
  source = {"exported": directory} | recorded.get("source", {})
  return Exported(exported.call, Settings.from_json(recorded), source)


def input_specs(settings: Settings, batch="b") -> dict:
  """Shapes and dtypes of a batch of model inputs; `batch` may be a symbolic dimension."""
  (b,) = jax.export.symbolic_shape(batch) if isinstance(batch, str) else (batch,)
  s, size = settings.sampler, settings.face_size
  rows = s.num_eye_rows
  eye_width = len(s.clocks) if s.eye_columns == "clocks" else len(s.normalisation.eye_mean)
  return {
    "face": jax.ShapeDtypeStruct((b, s.num_frames, size, size, 3), np.uint8),
    "eye": jax.ShapeDtypeStruct((b, rows, eye_width), np.float32),
    "gaze": jax.ShapeDtypeStruct((b, rows, len(s.normalisation.gaze_mean)), np.float32),
    "fixation_map": jax.ShapeDtypeStruct((b, MAP_SIZE, MAP_SIZE, 1), np.float32),
  }


def batch_of(inputs: dict) -> dict:
  """One sample's model inputs as a batch of one."""
  return {k: np.asarray(inputs[k])[None] for k in steps.MODEL_INPUTS}
