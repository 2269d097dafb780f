# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
# ---

# %% [markdown]
# # The real EMER release: validate, build, train, convert the authors' checkpoint
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<org>/emer_jax/blob/main/colab/02_real_emer.ipynb)
#
# EMER is licence-gated: the authors send it to academic users who sign their EULA. This notebook
# is for licence holders. Point `RELEASE_DIR` at the unpacked release (for example on Google
# Drive). Without one, the notebook writes a **fake release** in the official layout from
# EMER-Sim and runs top to bottom on it: every step works, and no number means anything.
#
# Steps: validate the release, build the TFDS dataset `emer/real`, train and test one protocol
# on one fold, and convert an authors' PyTorch checkpoint and test it the same way.

# %% [markdown]
# ## Install
#
# On Colab this clones the repository and installs it. From a local clone, install once with
# `pip install -e .` and run the notebook from the clone; this cell then only moves to the
# repository root, where `configs/` lives.

# %%
import os
import sys

REPO_URL = "https://github.com/<org>/emer_jax"  # must match the repository hosting this notebook

if "google.colab" in sys.modules:
  import shutil
  import subprocess
  from importlib.metadata import version

  from IPython import get_ipython

  if not os.path.isdir("/content/emer_jax"):
    subprocess.run(["git", "clone", "-q", "--depth=1", REPO_URL, "/content/emer_jax"], check=True)
    get_ipython().run_line_magic("pip", "install -q -e /content/emer_jax")
    # The package's pins may have replaced the runtime's JAX (e.g. by a CPU build of another
    # version); install the accelerator's build of the version now installed.
    jax_version = version("jax")
    if shutil.which("nvidia-smi"):
      get_ipython().run_line_magic("pip", f"install -q 'jax[cuda12]=={jax_version}'")
    elif os.path.exists("/dev/accel0"):
      get_ipython().run_line_magic("pip", f"install -q 'jax[tpu]=={jax_version}'")
  os.chdir("/content/emer_jax")
elif os.path.basename(os.getcwd()) == "colab":
  os.chdir("..")
sys.path.insert(0, os.getcwd())

# %% [markdown]
# On Colab, mount Google Drive first if the release lives there:
# `from google.colab import drive; drive.mount("/content/drive")`.

# %% [markdown]
# ## Parameters
#
# `RELEASE_DIR`: the unpacked release. `CHECKPOINT`: an authors' `.pth` (or `.npz`) state dict,
# `""` for none. `TINY=True` (the test suite sets `EMER_TINY=1`) shrinks the model and runs a few
# steps, only to check that every cell works.

# %%
TINY = os.environ.get("EMER_TINY") == "1"
RELEASE_DIR = os.environ.get("EMER_RELEASE_DIR", "/content/drive/MyDrive/EMER")
CHECKPOINT = os.environ.get("EMER_CHECKPOINT", "")
PROTOCOL = "er7"  # see emer_jax.protocols.PROTOCOLS
FOLD = 1
RUNS = os.environ.get("EMER_RUNS", "runs")
FAKE = not os.path.isdir(RELEASE_DIR)
if FAKE:  # a fake release, and its own data_dir so that it never passes for the real one
  RELEASE_DIR = os.path.join(RUNS, "02_fake_release")
  DATA_DIR = os.path.join(RUNS, "02_fake_tfds")
else:
  DATA_DIR = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
WORKDIR = os.path.join(RUNS, f"02_real_{PROTOCOL}")

# Sizes that compile in seconds on a CPU; the other notebooks use the same ones, so a shared
# compilation cache serves them all.
TINY_OVERRIDES = {
  "total_steps": 4,
  "log_every_steps": 2,
  "eval_every_steps": 2,
  "checkpoint_every_steps": 4,
  "model.face_encoder.widths": (4, 8, 8, 8),
  "model.feature_dim": 16,
  "model.token_dim": 16,
  "model.transformer.num_heads": 2,
  "model.transformer.head_dim": 8,
  "model.transformer.mlp_dim": 16,
  "model.sequence_encoder.num_layers": 1,
}

# %%
from absl import flags

flags.FLAGS.mark_as_parsed()  # grain's prefetch reads absl flags; a notebook never parses them

from emer_jax import logs

logs.quiet()  # library logs at WARNING, as in the commands

import numpy as np
from IPython.display import Markdown, display

from configs import quickstart
from emer_jax.config import base_config
from emer_jax.evaluation import predictions, tables
from emer_jax.train.trainer import train_and_evaluate
from tfds_emer.build import build
from tfds_emer.fake_release import write_release
from tfds_emer.sim.config import SimConfig
from tfds_emer.validate import validate

# %% [markdown]
# ## A fake release, when no real one is mounted
#
# `write_release` (the command `python -m tfds_emer.fake_release`) writes EMER-Sim subjects in
# the release's layout: `eye_movement data/<ID>.xlsx`, `face_light_align image/<ID>/*.jpg`,
# `EMER_label.xlsx` and `emer_set.txt`.

# %%
if FAKE and not os.path.isdir(RELEASE_DIR):
  subjects = 5 if TINY else 10
  write_release(RELEASE_DIR, SimConfig(num_subjects=subjects, num_samples=10 * subjects))
print("release:", RELEASE_DIR, "(fake)" if FAKE else "")
print(sorted(os.listdir(RELEASE_DIR)))

# %% [markdown]
# ## Validate
#
# The validator reads every label, fold and file once and lists each defect with the file or
# sample it concerns (missing label rows, unknown classes, values out of range, wrong eye
# columns, unreadable videos, …). The build runs the same checks and stops before writing
# anything if there is a defect. Same as `python -m tfds_emer.validate --manual_dir=DIR`.

# %%
report = validate(RELEASE_DIR, progress=True)
print(report.text())
assert report.ok, "fix the defects above, or describe the release in emer_mapping.json"

# %% [markdown]
# ## Build `emer/real`
#
# Same as `python -m tfds_emer.build --config=real --manual_dir=DIR --data_dir=DATA`. The full
# release takes a while (every eye export and face clip is decoded); a built dataset is reused.

# %%
builder = build("real", data_dir=DATA_DIR, manual_dir=RELEASE_DIR)
print(builder.info.full_name, builder.info.splits["train"].num_examples, "samples in", DATA_DIR)

# %% [markdown]
# ## Train and test one protocol on one fold
#
# On the real data this is the reference EMERT with the authors' settings (`base_config`),
# trained on the other four folds with a subject-grouped validation split for model selection.
# On the fake release it is the narrow quickstart model. For all five folds and several seeds,
# set `config.folds` and `config.seeds`, or run the protocol suite (notebook 03).

# %%
config = quickstart.get_config() if FAKE else base_config("reference")
config.dataset = "emer/real"
config.data_dir = DATA_DIR
config.protocol = PROTOCOL
config.folds = (FOLD,)
if TINY:
  config.update_from_flattened_dict(TINY_OVERRIDES)
results = train_and_evaluate(config, WORKDIR)
display(Markdown(tables.results_markdown(results)))

# %% [markdown]
# ## Convert an authors' checkpoint
#
# The authors' code saves PyTorch state dicts. `emer_jax.convert` reads them without PyTorch
# and builds the matching reference EMERT (the transformer depth is read from the keys; other
# sizes are the reference's unless overridden). From a shell:
#
# ```bash
# python -m emer_jax.convert --checkpoint=X.pth --output=DIR   # writes DIR/model, DIR/config.json
# python -m emer_jax.main --config=configs/quickstart.py --workdir=W --config.mode=eval \
#     --config.init_checkpoint=DIR/model --config.dataset=emer/real …
# ```
#
# Without a checkpoint, this notebook makes a stand-in: it exports the model it just trained to
# the authors' names and layout (`export_state_dict`), so converting it back must give the same
# test predictions.

# %%
from flax import nnx

from emer_jax import models
from emer_jax.convert import export_state_dict, load_reference_checkpoint, names
from emer_jax.models import summary
from emer_jax.protocols import head_sizes
from emer_jax.train.checkpoint import restore_model, save_model
from emer_jax.train.state import run_targets

TARGET = run_targets(config)[0]
sizes = {}  # dotted model-config keys where the checkpoint differs from the reference
if not CHECKPOINT:
  best = os.path.join(WORKDIR, "checkpoints", f"fold{FOLD}_seed0", "best")
  trained = models.build_model(
    config.model, heads=head_sizes(run_targets(config)), rngs=nnx.Rngs(params=0, dropout=1)
  )
  restore_model(os.path.join(best, max(os.listdir(best), key=int), "model"), trained)
  CHECKPOINT = os.path.join(WORKDIR, "stand_in_authors_checkpoint.npz")
  np.savez(CHECKPOINT, **export_state_dict(trained, names.emert_name))
  # The stand-in is the narrow quickstart model, so its sizes are given explicitly.
  flat = config.model.copy_and_resolve_references().to_dict()
  sizes = {f"{k}.{kk}": vv for k, v in flat.items() if isinstance(v, dict) for kk, vv in v.items()}
  sizes |= {k: v for k, v in flat.items() if not isinstance(v, dict)}

model, model_config = load_reference_checkpoint(CHECKPOINT, target=TARGET, **sizes)
save_model(os.path.join(WORKDIR, "converted", "model"), model)
print("transformer depth", model_config.transformer.depth, summary.parameter_counts(model, depth=1))

# %% [markdown]
# Test the converted weights exactly as a trained run is tested: `mode='eval'` with
# `init_checkpoint` skips training and evaluates the fold's test split.

# %%
eval_config = config.copy_and_resolve_references()
eval_config.model.update(model_config)
eval_config.mode = "eval"
eval_config.init_checkpoint = os.path.join(WORKDIR, "converted", "model")
converted = train_and_evaluate(eval_config, os.path.join(WORKDIR, "converted_eval"))
display(Markdown(tables.results_markdown(converted)))

# %% [markdown]
# With the stand-in, the converted model must predict what the trained one did.

# %%
before = predictions.read_predictions(predictions.predictions_path(WORKDIR, FOLD, 0))
after = predictions.read_predictions(
  predictions.predictions_path(os.path.join(WORKDIR, "converted_eval", "eval"), FOLD, 0)
)
probabilities = [c for c in before.columns if c.startswith(predictions.PROB_PREFIX)]
print(
  "largest probability difference:",
  np.abs(before[probabilities] - after[probabilities]).max().max(),
)

# %% [markdown]
# ## Predict on a recording
#
# `emer_jax.predict` takes raw recordings: a face video (or aligned frames) and an eye-tracker
# export per participant, and writes ER and FER probabilities (JSON and CSV) and a picture per
# recording. Put your own in `RECORDINGS` (`<ID>.mp4` or frames `<ID>/`, plus `<ID>.tsv`);
# without them, this writes one test sample of the dataset back as a recording: its frames and
# a Pro Lab-style export (tab-separated, decimal commas). From a shell:
#
# ```bash
# python -m emer_jax.predict --workdir=W --input_dir=RECORDINGS --output=OUT.json
# ```

# %%
from IPython.display import Image

from emer_jax import predict
from emer_jax.data.source import open_source
from emer_jax.predict import samples

RECORDINGS = os.environ.get("EMER_RECORDINGS", "")
if not RECORDINGS:
  RECORDINGS = os.path.join(WORKDIR, "recordings")
  data = open_source("emer/real", DATA_DIR, prepare=False)
  sample_id = before.sample_id[0]
  index = list(data.index["sample_id"]).index(sample_id)
  samples.write_recording(data.source[index], RECORDINGS, sample_id)

output = os.path.join(WORKDIR, "predictions", "recordings.json")
entries = predict.predict(
  predict.from_workdir(WORKDIR), predict.find_recordings(RECORDINGS), output
)
for entry in entries:
  heads = {t: h.get("predicted", h.get("value")) for t, h in entry["heads"].items()}
  print(entry["id"], heads, "gap:", entry["gap"], entry["warnings"])
Image(predict.report.picture_path(output, entries[0]["id"]))
