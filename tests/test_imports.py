"""Every facecore module imports, and imports between facecore modules form no cycle: neither at
module level nor inside functions (a deferred import only hides a cycle)."""
import ast
import importlib
import pkgutil
from pathlib import Path

import facecore

PKG = Path(facecore.__file__).parent
BASE = {"paths", "files", "runtime", "preprocessing", "checkpoint", "zoo", "registry", "settings", "checks", "zoo_table"}  # the base layer


# The training/checkpoint half of the package: no cycle, even a deferred one, may pass through these.
# (Deferred cycles wholly inside the detection/evaluation half are that half's to check.)
TRAINING_HALF = BASE | {"models", "train", "trainconfig", "trainstate", "warmstart", "losses", "data", "shipping",
                        "experiment", "pipeline", "profiles", "landmarks_data", "landmarks", "plots"}


def _edges(module_level_only: bool = False) -> dict[str, set[str]]:
    """module -> facecore modules it imports anywhere (``from .x import``, ``from . import x``, ``import facecore.x``)."""
    mods = {m.name for m in pkgutil.iter_modules([str(PKG)])}
    out: dict[str, set[str]] = {}
    for name in mods:
        tree = ast.parse((PKG / f"{name}.py").read_text())
        deps = set()
        for node in (tree.body if module_level_only else ast.walk(tree)):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(a.name for a in node.names if a.name in mods)
                elif node.module and node.module.startswith("facecore."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("facecore."))
        out[name] = deps & mods
    return out


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as a list of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_at_module_level():
    assert find_cycle(_edges(module_level_only=True)) is None


def cycle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A cycle that passes through ``start`` (breadth-first from its imports back to it), or None."""
    parent: dict[str, str] = {d: start for d in edges.get(start, ())}
    queue = sorted(parent)
    while queue:
        n = queue.pop(0)
        if n == start:
            path = [start]
            while path[-1] != start or len(path) == 1:
                path.append(parent[path[-1]])
            return path[::-1]
        for d in sorted(edges.get(n, ())):
            if d not in parent:
                parent[d] = n
                queue.append(d)
    return None


def test_cycle_through_finds_one():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "b") == ["b", "c", "a", "b"]
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"b"}}, "a") is None


def test_no_import_cycle_through_the_training_half_even_deferred():
    edges = _edges()
    for m in sorted(TRAINING_HALF & set(edges)):
        assert cycle_through(edges, m) is None, m


def test_base_layer_imports_only_the_base_layer():
    edges = _edges()
    for m in BASE:
        assert edges[m] <= BASE, f"{m} imports {edges[m] - BASE}"


def test_every_module_imports():
    for m in pkgutil.iter_modules([str(PKG)]):
        importlib.import_module(f"facecore.{m.name}")
