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


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory):
  """A TFDS data_dir holding `emer/synthetic_small`, built once per test session."""
  from emer_jax.data.source import open_source

  data_dir = str(tmp_path_factory.mktemp("tfds"))
  open_source("emer/synthetic_small", data_dir)
  return data_dir
