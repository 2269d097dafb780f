"""The README's light install (`pip install -e .`, no extras), simulated in this environment.

With this folder on PYTHONPATH, a top-level import whose distribution is not required by
pyproject.toml's core dependencies (followed through their own requirements) fails as if it were
not installed. So TensorFlow, and anything only TensorFlow or the dev extras bring, is missing.
"""

import importlib.machinery
import importlib.metadata as metadata
import os
import re
import sys
import tomllib

from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def core_distributions() -> set[str]:
  """The distributions `pip install -e .` installs: the core dependencies and theirs."""
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  todo, seen = [Requirement(d) for d in project["dependencies"]], set()
  while todo:
    req = todo.pop()
    if req.marker and not req.marker.evaluate({"extra": ""}):
      continue
    key = (_norm(req.name), tuple(sorted(req.extras)))
    if key in seen:
      continue
    seen.add(key)
    try:
      requires = metadata.distribution(req.name).requires or []
    except metadata.PackageNotFoundError:
      continue
    for sub in map(Requirement, requires):
      extras = req.extras or {""}
      if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
        todo.append(sub)
  return {name for name, _ in seen} | {_norm(project["name"])}


class LightPathFinder:
  """sys.path's finder, which does not find the modules outside the light install: `import`
  raises ModuleNotFoundError and `importlib.util.find_spec` returns None, as for a package that
  is not installed."""

  def __init__(self):
    allowed = core_distributions()
    self.absent = {
      module
      for module, dists in metadata.packages_distributions().items()
      if module not in sys.stdlib_module_names and not any(_norm(d) in allowed for d in dists)
    }

  def find_spec(self, name, path=None, target=None):
    if name.partition(".")[0] in self.absent:
      return None
    return importlib.machinery.PathFinder.find_spec(name, path, target)

  def invalidate_caches(self):
    importlib.machinery.PathFinder.invalidate_caches()


sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = LightPathFinder()
