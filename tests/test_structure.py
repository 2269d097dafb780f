"""The code's structural rules, read from its own imports with `ast`: no module over 400 lines,
no import cycle between modules, no module using another module's private (`_name`) names."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("emer_jax", "tfds_emer")
MAX_LINES = 400


def _modules() -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every module of the packages."""
  found = {}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = list(path.relative_to(ROOT).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts.pop()
      found[".".join(parts)] = path
  return found


MODULES = _modules()


def _absolute(module: str, node: ast.ImportFrom) -> str:
  """The module an `ImportFrom` names, with relative levels resolved against `module`."""
  if not node.level:
    return node.module or ""
  is_package = MODULES[module].name == "__init__.py"
  base = module.split(".")
  base = base[: len(base) - node.level + (1 if is_package else 0)]
  return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, tree: ast.Module):
  """(imported module, line) for every import in the module (function-level ones too), and the
  private names it takes: (owner module, name, line)."""
  edges, private = [], []
  aliases = {}  # local name -> module it is bound to
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name in MODULES:
          edges.append((alias.name, node.lineno))
          aliases[alias.asname or alias.name] = alias.name
    elif isinstance(node, ast.ImportFrom):
      source = _absolute(module, node)
      if source not in MODULES:
        continue
      for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in MODULES:
          edges.append((submodule, node.lineno))
          aliases[alias.asname or alias.name] = submodule
        else:
          edges.append((source, node.lineno))
          if alias.name.startswith("_") and not alias.name.startswith("__"):
            private.append((source, alias.name, node.lineno))
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and node.attr.startswith("_")
      and not node.attr.startswith("__")
    ):
      owner = _dotted(node.value, aliases)
      if owner in MODULES and owner != module:
        private.append((owner, node.attr, node.lineno))
  return edges, private


def _dotted(node, aliases) -> str | None:
  """The module an expression such as `trainer` or `emer_jax.train.trainer` names, if any."""
  if isinstance(node, ast.Name):
    return aliases.get(node.id)
  if isinstance(node, ast.Attribute):
    inner = _dotted(node.value, aliases)
    if inner is not None and f"{inner}.{node.attr}" in MODULES:
      return f"{inner}.{node.attr}"
    if isinstance(node.value, ast.Name) and node.value.id in PACKAGES:
      name = f"{node.value.id}.{node.attr}"
      return name if name in MODULES else None
  return None


def _graph():
  edges, private = {}, []
  for module, path in MODULES.items():
    found, taken = _imports(module, ast.parse(path.read_text(), str(path)))
    edges[module] = {target for target, _ in found if target != module}
    private += [(module, owner, name, line) for owner, name, line in taken]
  return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(edges.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return found


def _cycle_path(edges, component) -> str:
  """One cycle through the component's first module, written a -> b -> … -> a."""
  members, start = set(component), component[0]
  paths, queue = {start: [start]}, [start]
  while queue:
    v = queue.pop(0)
    for w in sorted(edges[v] & members):
      if w == start:
        return " -> ".join(paths[v] + [start])
      if w not in paths:
        paths[w] = paths[v] + [w]
        queue.append(w)
  return ", ".join(component)


def _parents(module: str) -> set[str]:
  """A module's enclosing packages: importing `a.b.c` runs `a` and `a.b` first, but an edge to a
  package is not counted as a cycle with what the package contains."""
  parts = module.split(".")
  return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_module_is_over_400_lines():
  long = [
    f"{path.relative_to(ROOT)}: {n} lines"
    for path in MODULES.values()
    if (n := len(path.read_text().splitlines())) > MAX_LINES
  ]
  assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)


def test_no_import_cycles():
  edges, _ = _graph()
  edges = {m: {t for t in targets if t not in _parents(m)} for m, targets in edges.items()}
  cycles = [
    f"{_cycle_path(edges, c)} (modules importing each other here: {', '.join(c)})"
    for c in _cycles(edges)
  ]
  assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_uses_another_modules_private_names():
  _, private = _graph()
  used = [
    f"{MODULES[module].relative_to(ROOT)}:{line} uses {owner}.{name}"
    for module, owner, name, line in private
  ]
  assert not used, "private names used from another module:\n" + "\n".join(used)


def test_the_checkpoint_code_does_not_depend_on_config_checking():
  """Orbax's layout (`_METADATA`) is the checkpoint code's to know; config_check asks it."""
  edges, _ = _graph()
  assert "emer_jax.config_check" not in edges["emer_jax.train.checkpoint"]
  assert "emer_jax.train.checkpoint" in edges["emer_jax.config_check"]
