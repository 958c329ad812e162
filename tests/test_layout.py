"""The package's shape: no import circles, imports only run downwards, no helper written twice.

Read from the source with `ast` (nothing is imported), so the checks hold for
imports inside functions too.
"""
import ast
import collections
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "prompt_tuning")
# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = [
    {"tree", "paths", "prompts"},
    {"models"},
    {"checkpoints", "data", "sharding"},
    {"library"},
    {"losses"},
    {"eval", "infer"},
    {"train"},
    {"compare", "transfer"},
    {"demo", "testing", "cli"},
]


def _modules() -> dict[str, str]:
  """{dotted module name: file path} for every module of the package."""
  out = {}
  for dirpath, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
        out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return out


MODULES = _modules()


def _imports(name: str, path: str) -> set[str]:
  """The package modules `name` imports (absolute imports, `from x import y` resolved)."""
  found = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    else:
      continue
    for target in targets:
      while target and target not in MODULES:
        target = target.rpartition(".")[0]
      if target and target != name:
        found.add(target)
  return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
  part = module.split(".")[1] if "." in module else ""
  for i, layer in enumerate(LAYERS):
    if part in layer:
      return i
  raise AssertionError(f"{module} is in no layer of test_layout.LAYERS")


def test_the_graph_is_really_read():
  assert "prompt_tuning.models.t5" in GRAPH["prompt_tuning.models.decoding"]
  assert "prompt_tuning.eval.evaluator" in GRAPH["prompt_tuning.train.loop"]
  assert len(MODULES) > 40


def test_no_module_is_part_of_an_import_circle():
  # A package's __init__ re-exporting its modules is not a circle of code; the
  # modules themselves must form a DAG.
  graph = {m: {t for t in ts if MODULES[t].endswith("__init__.py") is False}
           for m, ts in GRAPH.items() if not MODULES[m].endswith("__init__.py")}
  state, stack, circles = {}, [], []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        circles.append(stack[stack.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node)
  assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_imports_only_run_downwards():
  upward = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() for t in ts
                  if "." in m and "." in t and _layer(t) > _layer(m)
                  and not m.endswith("__main__"))  # `python -m x.train` is an entry point
  assert not upward, f"imports that run back up the layers: {upward}"


def _functions():
  """(module, name, normalised body) of every function longer than three statements."""
  for module, path in MODULES.items():
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant):
          body = body[1:]  # the docstring
        if len(body) > 3:
          yield module, node.name, ast.dump(ast.Module(body=body, type_ignores=[]))


def test_no_helper_is_defined_twice():
  bodies = collections.defaultdict(list)
  for module, name, body in _functions():
    bodies[body].append(f"{module}.{name}")
  twice = [places for places in bodies.values() if len(places) > 1]
  assert not twice, f"the same function body in several places: {twice}"
