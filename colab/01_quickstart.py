# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # emer_jax quickstart: EMER-Sim, a small EMERT, its curves and confusion matrix
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<org>/emer_jax/blob/main/colab/01_quickstart.ipynb)
#
# EMER is the *eye-behaviour-aided multimodal emotion recognition* dataset: face videos, eye
# movements and fixation maps, each sample labelled with the genuine emotion (**ER**) and the
# displayed facial expression (**FER**). The real release is licence-gated, so this notebook uses
# **EMER-Sim**, the synthetic EMER that ships with the code: it has EMER's shapes and label
# structure, and by construction its gap (faces can mask, eyes leak). Its numbers say nothing
# about real EMER.
#
# The notebook builds `emer/synthetic_small`, looks at a sample, trains a narrow EMERT on ER
# 7-class (fold 1), and plots the training curves, the confusion matrix and the modality
# discriminator's accuracies. About 5 minutes on a CPU, less on a Colab GPU.

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
# ## Parameters
#
# `TINY=True` (the test suite sets `EMER_TINY=1`) shrinks the model and runs a few steps, only to
# check that every cell works. Datasets go to `DATA_DIR` (TFDS's default unless
# `TFDS_DATA_DIR` is set) and runs to `RUNS/`.

# %%
TINY = os.environ.get("EMER_TINY") == "1"
DATA_DIR = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
RUNS = os.environ.get("EMER_RUNS", "runs")
WORKDIR = os.path.join(RUNS, "01_quickstart")

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

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, Markdown, display

from configs import quickstart
from emer_jax.data.source import open_source
from emer_jax.evaluation import metrics, plots, predictions, tables
from emer_jax.protocols import EMOTIONS
from emer_jax.train.trainer import train_and_evaluate

# %% [markdown]
# ## Build EMER-Sim
#
# `open_source` builds a missing synthetic config (array_record, about 15 s and 80 MB) and opens
# it as a random-access `tfds.data_source`, with the small per-sample fields (ids, folds, labels)
# read into `data.index`.

# %%
data = open_source("emer/synthetic_small", DATA_DIR)
index = pd.DataFrame(data.index)
print(
  f"{len(data)} samples of {index.subject_id.nunique()} subjects in folds {sorted(set(index.fold))}"
)

# %% [markdown]
# Every sample carries two labels. Where the displayed expression (FER) differs from the genuine
# emotion (ER), the face masks what the person feels; only the eyes can tell.


# %%
def emotion_names(labels):
  """Class names in the dataset's order (happiness … neutral), not alphabetical."""
  return pd.Categorical.from_codes(labels, categories=EMOTIONS)


view = pd.crosstab(
  emotion_names(index.er_emotion),
  emotion_names(index.fer_emotion),
  rownames=["ER (genuine)"],
  colnames=["FER (displayed)"],
  dropna=False,
)
print(f"masked samples (ER ≠ FER): {(index.er_emotion != index.fer_emotion).mean():.0%}")
view

# %% [markdown]
# ## Look at one sample
#
# The face frames, the eye-tracker rows (gaze point, pupil, validity) and the fixation map.
# Here the first masked sample: its face and its eyes disagree.

# %%
masked = int(np.flatnonzero(index.er_emotion != index.fer_emotion)[0])
sample = data.source[masked]
title = (
  f"{sample['sample_id'].decode()}: genuine {EMOTIONS[sample['er_emotion']]}, "
  f"displayed {EMOTIONS[sample['fer_emotion']]} (intensity {sample['fer_intensity']:.1f})"
)
frames = sample["face"]
fig, axes = plt.subplots(2, len(frames) // 2, figsize=(16, 4.5))
for ax, frame in zip(axes.flat, frames, strict=True):
  ax.imshow(frame)
  ax.axis("off")
fig.suptitle(title)
plt.show()

# %%
columns = list(data.metadata["eye_columns"])
eye = pd.DataFrame(sample["eye"], columns=columns)
seconds = (eye["Recording timestamp"] - eye["Recording timestamp"].iloc[0]) / 1000
fig, (rows, heat) = plt.subplots(1, 2, figsize=(15, 3.8), width_ratios=[3, 1])
rows.plot(seconds, eye["Gaze point X"], lw=0.8, label="gaze x (px)")
rows.plot(seconds, eye["Gaze point Y"], lw=0.8, label="gaze y (px)")
rows.fill_between(
  seconds, 0, 1920, where=eye["Validity left"] == 0, color="red", alpha=0.2, label="invalid"
)
rows.set_xlabel("s")
pupil = rows.twinx()
pupil.plot(
  seconds, eye["Pupil diameter left"], color="k", lw=0.5, alpha=0.6, label="pupil left (mm)"
)
pupil.set_ylabel("pupil left (mm)")
handles = rows.get_legend_handles_labels()[0] + pupil.get_legend_handles_labels()[0]
rows.legend(handles=handles, loc="upper right", fontsize=8)
rows.set_title(f"{len(eye)} eye rows at 50 Hz ({len(columns)} columns)")
heat.imshow(sample["fixation_map"][..., 0], cmap="magma")
heat.set_title("fixation map")
heat.axis("off")
plt.show()

# %% [markdown]
# ## Train a small EMERT
#
# `configs/quickstart.py` is the reference EMERT with a narrow face ResNet and a linear head, on
# ER 7-class, test fold 1. Any key can be overridden in Python as here, or on the command line
# (`--config.num_epochs=5`). `train_and_evaluate` picks the checkpoint on a validation split
# grouped by subject and tests it once on the held-out fold. Running the cell again resumes from
# the latest checkpoint, or re-reads the results of a finished run.

# %%
config = quickstart.get_config()
config.data_dir = DATA_DIR
if TINY:
  config.update_from_flattened_dict(TINY_OVERRIDES)
print(config.model.variant, config.model.modalities, "protocol", config.protocol)

# %%
results = train_and_evaluate(config, WORKDIR)
display(Markdown(tables.results_markdown(results)))

# %% [markdown]
# ## Training curves
#
# `metrics.jsonl` holds one JSON line per logged step: the loss terms, the discriminator's
# accuracies, learning rate and throughput from training, and the `val/` metrics after each
# evaluation. (`plots.plot_learning_curves(path, png)` draws every series at once.)

# %%
series = plots.read_metrics_jsonl(f"{WORKDIR}/metrics.jsonl")


def plot_series(ax, keys, title):
  for key in keys:
    steps, values = series[key]
    ax.plot(steps, values, marker=".", label=key)
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.legend(fontsize=8)


fig, (loss, val) = plt.subplots(1, 2, figsize=(13, 3.8))
plot_series(loss, ["train/loss/total", "train/loss/task/er_emotion"], "training loss")
plot_series(val, ["val/er_emotion/war", "val/er_emotion/uar"], "validation ER-7 accuracy")
val.axhline(1 / len(EMOTIONS), color="grey", ls="--", label="chance 1/7")
val.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The modality discriminator
#
# EMERT splits each modality's features into a *specific* and an *invariant* part. One
# discriminator guesses the modality from each part. On the specific part it is trained to
# succeed (accuracy rises towards 1). On the invariant part its gradient is reversed, so the
# encoders learn to fool it (accuracy stays near chance, 1 / number of modalities).

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
plot_series(
  ax,
  ["train/discriminator/accuracy_specific", "train/discriminator/accuracy_invariant"],
  "modality discriminator",
)
ax.axhline(1 / len(config.model.modalities), color="grey", ls="--", label="chance")
ax.legend(fontsize=8)
ax.set_ylim(0, 1.05)
plt.show()

# %% [markdown]
# ## Test predictions and the confusion matrix
#
# Each run writes its test predictions (truth, prediction, class probabilities) to a CSV.

# %%
frame = predictions.read_predictions(predictions.predictions_path(WORKDIR, fold=1, seed=0))
confusion = metrics.confusion_matrix(frame.er_emotion, frame.pred_er_emotion, len(EMOTIONS))
path = plots.plot_confusion(confusion, EMOTIONS, f"{WORKDIR}/confusion.png", "ER 7-class, fold 1")
display(Image(filename=path))
frame.head()

# %% [markdown]
# ## What the run wrote
#
# `config.json` (the resolved config), `metrics.jsonl`, TensorBoard events, Orbax checkpoints
# (`latest/` to resume, `best/` chosen on validation), the predictions CSV and `results.json`.
# The same run from a shell:
#
# ```bash
# python -m emer_jax.main --config=configs/quickstart.py --workdir=runs/quickstart
# ```

# %%
print(sorted(os.listdir(WORKDIR)))
print(json.dumps(results["mean"], indent=1))
