"""`pip install -e .` without extras (no TensorFlow) serves export and predict: their imports and
jax.export's serialisation (flatbuffers) come with the core dependencies of pyproject.toml."""

import os
import subprocess
import sys

from tests.test_readme import REPO

LIGHT = os.path.join(REPO, "tests", "light_install")

PROGRAM = """
import importlib.util
assert importlib.util.find_spec("tensorflow") is None, "the light install has no TensorFlow"
import jax, numpy as np
import emer_jax.export, emer_jax.predict, emer_jax.predict.__main__
exported = jax.export.export(jax.jit(lambda x: 2 * x))(jax.ShapeDtypeStruct((3,), np.float32))
restored = jax.export.deserialize(exported.serialize())
print(restored.call(np.ones(3, np.float32)))
"""


def test_export_serialises_with_the_core_dependencies_alone():
  env = os.environ | {"PYTHONPATH": os.pathsep.join([REPO, LIGHT])}
  out = subprocess.run(
    [sys.executable, "-c", PROGRAM], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[2. 2. 2.]"
