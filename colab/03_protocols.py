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
# # Protocols: face-only against eye-aware models, and the masked samples
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<org>/emer_jax/blob/main/colab/03_protocols.ipynb)
#
# The EMER papers' thesis: a face can mask the genuine emotion, eye behaviour leaks it. Each
# sample has a genuine emotion (ER) and a displayed expression (FER); where they differ, the
# person masks. A model that sees only the face should predict what is displayed, and a model
# that also sees the eyes should recover more of what is felt.
#
# This notebook trains the same EMERT on the ER 7-class protocol with different input streams,
# tabulates them side by side, breaks the results down per class, and then looks only at the
# masked test samples. It runs on EMER-Sim, which is built to have this gap, so the result here
# shows the analysis works, not that the thesis holds: run it on `emer/real` for that.

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
# `MODELS` maps a name to config overrides: here the input streams of EMERT. The defaults take
# a few CPU minutes per model and fold; on a GPU use `emer/synthetic` (1,303 samples) or
# `emer/real`, all five folds and several seeds. `TINY=True` (the test suite sets `EMER_TINY=1`)
# shrinks the model and runs a few steps, only to check that every cell works.

# %%
TINY = os.environ.get("EMER_TINY") == "1"
DATASET = "emer/synthetic_small"
DATA_DIR = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
RUNS = os.environ.get("EMER_RUNS", "runs")
FOLDS = (1,)
SEEDS = (0,)
MODELS = {
  "face only": {"model.modalities": ("face",), "model.use_discriminator": False},
  "eyes only": {"model.modalities": ("eye", "gaze")},
  "face + eyes (EMERT)": {},
}

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
if TINY:
  del MODELS["eyes only"]

# %%
from absl import flags

flags.FLAGS.mark_as_parsed()  # grain's prefetch reads absl flags; a notebook never parses them

from emer_jax import logs

logs.quiet()  # library logs at WARNING, as in the commands

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from configs import quickstart
from emer_jax.data.source import open_source
from emer_jax.evaluation import metrics, predictions, tables
from emer_jax.protocols import EMOTIONS
from emer_jax.train.trainer import train_and_evaluate

# %% [markdown]
# ## Run (or load) each model
#
# Every model gets its own workdir. A finished run is not trained again: the cell then only
# re-reads `results.json`, so the analysis below can be rerun freely. The same from a shell:
#
# ```bash
# python -m emer_jax.main --config=configs/quickstart.py --workdir=runs/03_face_only \
#     --config.model.modalities="('face',)" --config.model.use_discriminator=False
# ```


# %%
def workdir(name):
  return os.path.join(RUNS, "03_" + name.split(" (")[0].replace(" + ", "_").replace(" ", "_"))


results = {}
for name, overrides in MODELS.items():
  config = quickstart.get_config()
  config.dataset, config.data_dir = DATASET, DATA_DIR
  config.folds, config.seeds = FOLDS, SEEDS
  if TINY:
    config.update_from_flattened_dict(TINY_OVERRIDES)
  config.update_from_flattened_dict(overrides)
  results[name] = train_and_evaluate(config, workdir(name))

# %% [markdown]
# ## The comparison table
#
# Test metrics pooled per fold, then mean ± std over folds and seeds; the best value per column
# is in bold. `tables.write_comparison` writes the same table as Markdown, CSV and LaTeX.

# %%
records = [
  {
    "model": name,
    "protocol": r["protocol"],
    "metric": metric,
    "mean": mean,
    "std": r["std"][metric],
  }
  for name, r in results.items()
  for metric, mean in r["mean"].items()
]
display(Markdown(tables.comparison_markdown(records)))

# %% [markdown]
# ## Per-class recall
#
# The predictions of every fold and seed, pooled. Emotions a face shows well (happiness,
# surprise) and emotions people tend to mask differ in how much the eyes add.


# %%
def all_predictions(name):
  frames = [
    predictions.read_predictions(predictions.predictions_path(workdir(name), fold, seed))
    for fold in FOLDS
    for seed in SEEDS
  ]
  return pd.concat(frames, ignore_index=True)


preds = {name: all_predictions(name) for name in MODELS}
recall = pd.DataFrame(
  {
    name: metrics.classification_metrics(p.er_emotion, p.pred_er_emotion, len(EMOTIONS))[
      "per_class_recall"
    ]
    for name, p in preds.items()
  },
  index=EMOTIONS,
)
recall.plot.bar(figsize=(10, 3.8), ylim=(0, 1), ylabel="recall", title="ER 7-class, per class")
plt.show()
recall.round(2)

# %% [markdown]
# ## Masked samples: where ER ≠ FER
#
# Join the predictions with the dataset's labels by `sample_id`, keep the samples whose displayed
# expression differs from the genuine emotion, and ask of each model's prediction: is it the
# genuine emotion (right), or the displayed one (fooled by the face)?

# %%
labels = pd.DataFrame(open_source(DATASET, DATA_DIR).index)[["sample_id", "fer_emotion"]]
rows = []
for name, p in preds.items():
  p = p.merge(labels, on="sample_id")
  masked = p[p.er_emotion != p.fer_emotion]
  unmasked = p[p.er_emotion == p.fer_emotion]
  rows.append(
    {
      "model": name,
      "accuracy, unmasked": (unmasked.pred_er_emotion == unmasked.er_emotion).mean(),
      "accuracy, masked": (masked.pred_er_emotion == masked.er_emotion).mean(),
      "masked, predicts the display": (masked.pred_er_emotion == masked.fer_emotion).mean(),
    }
  )
masking = pd.DataFrame(rows).set_index("model")
print(f"{len(masked)} masked and {len(unmasked)} unmasked test samples")
masking.plot.bar(figsize=(9, 3.8), ylim=(0, 1), rot=0, title="ER 7-class on masked samples")
plt.show()
masking.round(2)

# %% [markdown]
# Read it as: the face-only model's accuracy drops on masked samples, and much of what it gets
# wrong there is the displayed expression; eye streams keep part of the accuracy. With few test
# samples (one fold of `synthetic_small` has about 40, a dozen masked) the bars are noisy: use
# more folds, seeds and data for a claim.
