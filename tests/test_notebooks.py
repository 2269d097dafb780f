"""The Colab notebooks: each `.ipynb` matches its jupytext twin, has no outputs, and runs.

Notebooks run with EMER_TINY=1 (a tiny model, a few steps) on the shared `synthetic_small` data
and the suite's persistent compilation cache (set in conftest.py, inherited by the kernel).
They share one model size, so the first one compiled serves the others.
"""

import glob
import os
import shutil
import subprocess
import sys
import types
from importlib.metadata import version

import IPython
import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from tests.noise import assert_quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(glob.glob(os.path.join(REPO, "colab", "[0-9][0-9]_*.py")))
NAMES = [os.path.basename(p)[:-3] for p in SOURCES]


def _cells(notebook):
  return [(c.cell_type, c.source.strip()) for c in notebook.cells]


def test_every_notebook_has_a_twin():
  assert NAMES, "no notebooks found in colab/"
  ipynbs = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))
  assert [os.path.basename(p)[:-6] for p in ipynbs] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_in_sync_with_py_and_without_outputs(name):
  source = jupytext.read(os.path.join(REPO, "colab", f"{name}.py"))
  notebook = nbformat.read(os.path.join(REPO, "colab", f"{name}.ipynb"), as_version=4)
  assert _cells(notebook) == _cells(source), (
    f"colab/{name}.ipynb differs from colab/{name}.py; run `jupytext --sync colab/{name}.py`."
  )
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, f"{name}: outputs committed"
  assert "colab.research.google.com/github/" in notebook.cells[0].source, "no Colab badge"
  assert f"colab/{name}.ipynb" in notebook.cells[0].source, "badge points elsewhere"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("accelerator", ["gpu", "tpu", None])
def test_colab_setup_keeps_the_installed_jax_version(name, accelerator, monkeypatch):
  """On Colab the setup cell installs the package, then the accelerator's build of the JAX
  version the package's pins left installed (Colab's own where it satisfies them)."""
  notebook = jupytext.read(os.path.join(REPO, "colab", f"{name}.py"))
  (setup,) = [c.source for c in notebook.cells if '"google.colab" in sys.modules' in c.source]
  magics, exists = [], os.path.exists
  monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  shell = types.SimpleNamespace(run_line_magic=lambda magic, line: magics.append((magic, line)))
  monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
  monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: None)
  monkeypatch.setattr(shutil, "which", lambda cmd: "/bin/x" if accelerator == "gpu" else None)
  monkeypatch.setattr(
    os.path, "exists", lambda p: p == "/dev/accel0" and accelerator == "tpu" or exists(p)
  )
  monkeypatch.setattr(os, "chdir", lambda path: None)
  monkeypatch.setattr(sys, "path", list(sys.path))
  exec(setup, {"__name__": "__main__"})
  extra = {
    "gpu": [f"install -q 'jax[cuda12]=={version('jax')}'"],
    "tpu": [f"install -q 'jax[tpu]=={version('jax')}'"],
    None: [],
  }
  assert magics == [
    ("pip", line) for line in ["install -q -e /content/emer_jax", *extra[accelerator]]
  ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, small_data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("EMER_TINY", "1")
  monkeypatch.setenv("TFDS_DATA_DIR", small_data_dir)
  # Relative, as the notebooks' default `runs`: every path a notebook hands a library is too.
  monkeypatch.setenv("EMER_RUNS", os.path.relpath(tmp_path, REPO))
  notebook = nbformat.read(os.path.join(REPO, "colab", f"{name}.ipynb"), as_version=4)
  client = NotebookClient(
    notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}
  )
  client.execute()  # raises CellExecutionError, with the failing cell and traceback
  printed = [
    output.get("text", "")
    for cell in notebook.cells
    if cell.cell_type == "code"
    for output in cell.outputs
    if output.output_type == "stream"
  ]
  assert_quiet("".join(printed))
