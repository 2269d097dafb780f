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
# # Accelerators: devices, the mesh, bfloat16 and the benchmark
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/<org>/emer_jax/blob/main/colab/04_accelerators.ipynb)
#
# emer_jax trains with `jax.jit` on a 2-D device mesh, axes `data` and `model`. Batches are split
# along `data`; parameters annotated for it are split along `model`. The same code runs on a CPU,
# one Colab GPU or a Colab TPU (8 cores). Choose the runtime under *Runtime → Change runtime
# type* before running.
#
# This notebook shows the devices, builds meshes from the `mesh.data` / `mesh.model` config
# keys, places a batch on one, and measures speed and memory in float32 and bfloat16 with the
# benchmark.

# %% [markdown]
# ## Install
#
# On Colab this clones the repository and installs it, with the GPU or TPU build of JAX. From a
# local clone, install once with `pip install -e .` and run the notebook from the clone; this
# cell then only moves to the repository root, where `configs/` lives.

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
# `DTYPES`: computation dtypes to benchmark (parameters and optimiser state stay float32).
# `TINY=True` (the test suite sets `EMER_TINY=1`) shrinks the model and times a few steps, only
# to check that every cell works.

# %%
TINY = os.environ.get("EMER_TINY") == "1"
DATA_DIR = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
DTYPES = ("float32", "bfloat16")
BATCH_SIZE = 16  # the reference's; on a GPU try 64 (2.3–2.9× the samples/s of 16 on an H200)

# Sizes that compile in seconds on a CPU.
TINY_OVERRIDES = {
  "benchmark.warmup_steps": 1,
  "benchmark.steps": 2,
  "benchmark.input_batches": 2,
  "model.face_encoder.widths": (4, 8, 8, 8),
  "model.feature_dim": 16,
  "model.token_dim": 16,
  "model.transformer.num_heads": 2,
  "model.transformer.head_dim": 8,
  "model.transformer.mlp_dim": 16,
  "model.sequence_encoder.num_layers": 1,
}
if TINY:
  DTYPES = ("bfloat16",)

# %%
from absl import flags

flags.FLAGS.mark_as_parsed()  # grain's prefetch reads absl flags; a notebook never parses them

from emer_jax import logs

logs.quiet()  # library logs at WARNING, as in the commands

import jax
import pandas as pd

from configs import benchmark as benchmark_config
from emer_jax import benchmark
from emer_jax.data import pipeline
from emer_jax.train import state as train_state

# %% [markdown]
# ## Devices
#
# A Colab GPU runtime shows one `cuda` device, a TPU runtime eight TPU cores, a CPU runtime one
# CPU. (The test suite fakes eight CPU devices with
# `XLA_FLAGS=--xla_force_host_platform_device_count=8`, set before JAX is imported.)

# %%
print(jax.__version__, jax.default_backend())
for device in jax.devices():
  print(device.id, device.device_kind, device.platform)

# %% [markdown]
# ## The mesh
#
# `train_state.make_mesh(config)` reads `config.mesh.data` and `config.mesh.model`; `-1` on one axis
# takes whatever the other leaves. The default (`data=-1, model=1`) is pure data parallelism.
# Sizes that do not cover the devices are an error. From the command line:
# `--config.mesh.data=4 --config.mesh.model=2`.

# %%
config = benchmark_config.get_config()
config.data_dir = DATA_DIR
config.batch_size = BATCH_SIZE
if TINY:
  config.update_from_flattened_dict(TINY_OVERRIDES)
count = jax.device_count()
meshes = [(-1, 1)] + ([(count // 2, 2)] if count % 2 == 0 else [])
for data, model in meshes:
  config.mesh.data, config.mesh.model = data, model
  mesh = train_state.make_mesh(config)
  print(f"mesh.data={data}, mesh.model={model} -> {dict(mesh.shape)}")

# %% [markdown]
# A global batch is split along `data`: each device holds `batch_size / data` samples, so the
# batch size must be a multiple of the `data` axis. Here the benchmark's random batch is placed
# on the last mesh.

# %%
batch = benchmark.synthetic_batch(config, train_state.run_targets(config), config.batch_size)
placed = pipeline.to_global(batch, mesh)
face = placed["face"]
print("face", face.shape, face.sharding.spec)
print("per device:", sorted({shard.data.shape for shard in face.addressable_shards}))

# %% [markdown]
# ## bfloat16 and the benchmark
#
# `config.dtype = "bfloat16"` computes activations in bfloat16 while parameters and optimiser
# state stay float32. On an H200 it trained the reference EMERT 1.12× as fast as float32 at
# batch 16 and 1.41× at batch 64, in 2.0× and 3.5× less peak memory; on CPUs it gains nothing
# (`docs/scaling.md`). The benchmark compiles one training step, times it on random
# batches of the configured shapes, times an evaluation step and the input pipeline alone, and
# reports peak memory where the backend tells it. From a shell it prints one JSON line:
#
# ```bash
# python -m emer_jax.benchmark --config=configs/benchmark.py --config.dtype=bfloat16
# ```

# %% [markdown]
# The benchmark runs here on the data-parallel mesh (`mesh.model=1`); splitting the model axis
# pays off only for models far wider than EMERT (see `docs/scaling.md`).

# %%
config.mesh.data, config.mesh.model = -1, 1
rows = []
for dtype in DTYPES:
  config.dtype = dtype
  result = benchmark.run(config)
  result.pop("config")
  rows.append({"dtype": dtype, **result})
table = pd.DataFrame(rows).set_index("dtype")
table["peak_memory_MiB"] = table.pop("peak_memory_bytes").astype(float) / 2**20
table.round(2).T

# %% [markdown]
# ## Training on the accelerator
#
# Every config key works the same on any backend, for example
#
# ```bash
# python -m emer_jax.main --config=configs/quickstart.py --workdir=runs/gpu \
#     --config.dtype=bfloat16 --config.batch_size=64 --config.mesh.data=-1
# ```
#
# On several hosts (a TPU pod slice, SLURM), start the same command on every host with
# `--distributed`; each process reads its own share of every batch and only process 0 writes
# logs and results. See the README and `docs/scaling.md`.
