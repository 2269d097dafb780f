"""Test setup: 8 fake CPU devices, set before JAX is imported anywhere."""

import os
import tempfile

# Cheap XLA CPU compilation: the suite compiles many small programs and runs each briefly.
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "")
  + " --xla_force_host_platform_device_count=8"
  + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  # 8 fake devices share 2 cores with a second test worker: a collective whose participants
  # arrive minutes apart must wait, not abort the process (XLA's default gives up sooner).
  + " --xla_cpu_collective_call_terminate_timeout_seconds=900"
  + " --xla_cpu_collective_timeout_seconds=900"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling EMERT on a CPU takes tens of seconds; the end-to-end tests start `emer_jax.main`
# several times with one config, so they share a persistent compilation cache.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "emer_jax_test_jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

# grain's multiprocess prefetch reads absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()


import pytest  # noqa: E402


def pytest_addoption(parser):
  parser.addoption(
    "--many-seeds", action="store_true", help="also run the many_seeds tests (fault injection)"
  )


def pytest_collection_modifyitems(config, items):
  if config.getoption("--many-seeds"):
    return
  skip = pytest.mark.skip(reason="fault injection at more seeds: pytest --many-seeds")
  for item in items:
    if "many_seeds" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory):
  """A TFDS data_dir holding `emer/synthetic_small`, built once per test session."""
  from emer_jax.data.source import open_source

  data_dir = str(tmp_path_factory.mktemp("tfds"))
  open_source("emer/synthetic_small", data_dir)
  return data_dir


def tiny_run_config(data_dir):
  """The quickstart with a tiny EMERT, 6 steps: tests/test_train.py's `_main` as a config."""
  from tests.test_train import tiny_config

  config = tiny_config(data_dir)
  config.total_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 2
  config.eval_every_steps = 3
  return config


@pytest.fixture(scope="session")
def finished(small_data_dir, tmp_path_factory):
  """(workdir, config): one uninterrupted tiny run (`tiny_run_config`), never modified by tests."""
  from emer_jax.train import trainer

  workdir = str(tmp_path_factory.mktemp("finished"))
  config = tiny_run_config(small_data_dir)
  trainer.train_and_evaluate(config, workdir)
  return workdir, config
