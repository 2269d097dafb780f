"""A workdir: one writer at a time, and the config it was started with.

`open_workdir` holds `W/.lock` (process 0 of a job; a second process stops at once naming the
holder), compares the config against `W/config.json` and writes that file only once the config
is accepted. A rerun whose config differs in a key outside `config_check.MAY_DIFFER` stops before
writing anything; `restart=True` moves the old contents aside to `W/before-restart-<time>/`.
"""

import contextlib
import datetime
import json
import os

import jax

from emer_jax import config_check
from tfds_emer import locks

CONFIG = "config.json"
LOCK = ".lock"


class ConfigChanged(config_check.UserError):
  pass


def read_config(workdir: str) -> dict | None:
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def changed_message(what: str, old: dict, new: dict, ways: str) -> str | None:
  """None when the flat configs agree on every key that matters, else the error message."""
  differ = config_check.differences(config_check.flat(old), config_check.flat(new))
  if not differ:
    return None
  listed = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in differ)
  return f"{what} was started with another config ({listed}). {ways}"


def check_same_config(workdir: str, config) -> None:
  old = read_config(workdir)
  if old is None:
    return
  message = changed_message(
    f"The workdir {workdir}",
    old,
    json.loads(config.to_json_best_effort()),
    "Use a new --workdir, pass the same config, or add --restart to move the old contents "
    f"aside (to {workdir}/before-restart-<time>/) and start over.",
  )
  if message:
    raise ConfigChanged(message)


def move_aside(workdir: str) -> str | None:
  """Moves everything but the lock into `before-restart-<time>/`; returns that folder."""
  entries = [e for e in os.listdir(workdir) if e != LOCK and not e.startswith("before-restart-")]
  if not entries:
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
  aside = os.path.join(workdir, f"before-restart-{stamp}")
  os.makedirs(aside)
  for entry in entries:
    os.rename(os.path.join(workdir, entry), os.path.join(aside, entry))
  return aside


def write_config(workdir: str, config) -> None:
  """Records the accepted config once: a rerun's keys that may differ do not replace it."""
  from emer_jax.train.trainer import write_json

  if read_config(workdir) is not None:
    return
  write_json(os.path.join(workdir, CONFIG), json.loads(config.to_json_best_effort()))


@contextlib.contextmanager
def locked(workdir: str):
  """The workdir's lock, held by process 0 of the job (other processes only follow it)."""
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index():
    yield
    return
  with locks.exclusive(os.path.join(workdir, LOCK), f"The workdir {workdir}"):
    yield
