"""Every command keeps compiled programs in a persistent cache: a rerun skips compiling."""

import os
import subprocess
import sys

from emer_jax import cli

# A command run through `cli.run`, as every emer_jax entry point is: it compiles one program
# and prints how many programs the persistent cache served.
_COMMAND = """
import jax, jax.numpy as jnp
from emer_jax import cli
hits = []
jax.monitoring.register_event_listener(
  lambda event, **_: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
def main(argv):
  jax.jit(lambda x: jnp.sin(x) * 2 + 1)(jnp.arange(5.0)).block_until_ready()
  print("hits", len(hits))
cli.run(main)
"""


def _run(*flags, env=None):
  env = {k: v for k, v in (env or os.environ).items() if k != "JAX_COMPILATION_CACHE_DIR"}
  out = subprocess.run(
    [sys.executable, "-c", _COMMAND, *flags], capture_output=True, text=True, env=env, check=True
  )
  return int(out.stdout.split()[-1])


def test_a_rerun_takes_its_programs_from_the_cache(tmp_path):
  cache = tmp_path / "cache"
  assert _run(f"--compilation_cache={cache}") == 0
  assert any(cache.iterdir())
  assert _run(f"--compilation_cache={cache}") >= 1


def test_the_default_cache_is_the_users_and_off_turns_it_off(tmp_path):
  env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
  assert _run(env=env) == 0
  assert any((tmp_path / "xdg" / "emer_jax" / "jax").iterdir())
  off = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg_off"))
  assert _run("--compilation_cache=off", env=off) == 0
  assert not (tmp_path / "xdg_off").exists()


def test_cache_folder_names(monkeypatch, tmp_path):
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
  assert cli.compilation_cache_dir(None) == str(tmp_path / "env")
  assert cli.compilation_cache_dir("OFF") is None
  monkeypatch.chdir(tmp_path)
  assert cli.compilation_cache_dir("rel/cache") == str(tmp_path / "rel" / "cache")
