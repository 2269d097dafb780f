"""The README's commands name modules, config files and config keys that exist.

The quickstart command itself runs end to end in test_train.py; this keeps every other command
a reader copies from the README from going stale.
"""

import importlib.util
import os
import re
import shlex

import pytest

from emer_jax.config import base_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_texts() -> list[str]:
  """Each `python -m …` command of README.md's bash blocks, one line, from `python -m`."""
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
  lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
  commands = []
  for line in lines:
    line = line.split(" #", 1)[0].strip()
    if "python -m " in line:
      commands.append(" ".join(line[line.index("python -m ") :].split()))
  return commands


def _commands():
  return [shlex.split(text) for text in command_texts()]


COMMANDS = _commands()


def test_readme_has_the_three_commands():
  modules = [c[2] for c in COMMANDS]
  assert {"emer_jax.main", "pytest", "emer_jax.suite", "tfds_emer.build"} <= set(modules)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:4]) for c in COMMANDS])
def test_readme_command_is_valid(command):
  module = command[2]
  assert importlib.util.find_spec(module) is not None, f"no module {module}"
  config_keys = None
  for arg in command[3:]:
    if arg.startswith("--config=configs/"):
      path = arg.removeprefix("--config=").split(":")[0]
      assert os.path.isfile(os.path.join(REPO, path)), f"no config file {path}"
    elif arg.startswith("--config.") and module == "emer_jax.main":
      key = arg.removeprefix("--config.").split("=")[0]
      if config_keys is None:
        config_keys = set(_flat_keys(base_config()))
      assert key in config_keys, f"{key} is not a config key"


def _flat_keys(config, prefix=""):
  for key, value in config.items():
    name = prefix + key
    yield name
    if hasattr(value, "items"):
      yield from _flat_keys(value, name + ".")
