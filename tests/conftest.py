"""Test setup: 8 fake CPU devices, set before JAX is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
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
