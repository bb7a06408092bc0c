"""Every facecore module imports; imports between facecore modules, wherever they sit (module top or
inside a function: a deferred import only hides a cycle), form no cycle; each layer (a subpackage of
facecore) imports only itself and the layers below it; facecore modules are imported at module top."""
import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import facecore

PKG = Path(facecore.__file__).parent

# Each layer and the layers it may import. The modules at the package's root (the pipeline, which runs
# the notebooks) sit above every layer.
LAYERS = {
    "core": set(),
    "networks": {"core"},
    "detection": {"core", "networks"},
    "evaluation": {"core", "networks", "detection"},
    "training": {"core", "networks", "detection", "evaluation"},
    "recognition": {"core", "networks", "detection", "evaluation"},
}
ROOT_MODULES = {"facecore", "facecore.pipeline"}


def module_files(pkg: Path = PKG) -> dict[str, Path]:
    """Dotted name -> file of every module and package (its ``__init__.py``) under ``pkg``."""
    out = {}
    for p in sorted(pkg.rglob("*.py")):
        parts = p.relative_to(pkg.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _known(name: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of ``mods`` (``a.b.func`` -> ``a.b``), or None."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(tree: ast.AST, name: str, is_package: bool, mods: dict[str, Path]) -> list[tuple[ast.stmt, str]]:
    """(import node, facecore module it imports) for every Import/ImportFrom anywhere in a module's tree;
    relative imports resolved against the module's package."""
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level
                    else node.module)
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` the module mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        out += [(node, t) for t in {_known(t, mods) for t in targets} if t and t != name]
    return out


def edges(pkg: Path = PKG) -> dict[str, set[str]]:
    """Module -> the facecore modules it imports anywhere in its file."""
    mods = module_files(pkg)
    return {name: {t for _, t in imports_of(ast.parse(p.read_text()), name, p.name == "__init__.py", mods)}
            for name, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as a list of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def layer_of(module: str) -> str | None:
    """``facecore.<layer>.x`` -> ``<layer>``; None for the package's root modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a layer that its importer's layer may not use."""
    bad = []
    for a, deps in sorted(graph.items()):
        la = layer_of(a)
        if la is None:
            continue
        bad += [f"{a} -> {b}" for b in sorted(deps) if layer_of(b) != la and layer_of(b) not in LAYERS[la]]
    return bad


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_edges_read_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "facecore"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n")
    (pkg / "high").mkdir()
    (pkg / "high" / "__init__.py").write_text("")
    (pkg / "high" / "b.py").write_text("from ..low.a import f\nimport facecore.low\n")
    g = edges(pkg)
    assert g["facecore.low.a"] == {"facecore.high.b"}
    assert g["facecore.high.b"] == {"facecore.low.a", "facecore.low"}
    assert find_cycle(g) == ["facecore.high.b", "facecore.low.a", "facecore.high.b"]


def test_no_import_cycle_even_through_function_level_imports():
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_only_layers_below():
    assert layer_violations({"facecore.core.a": {"facecore.networks.b"}, "facecore.networks.b": {"facecore.core.a"},
                             "facecore.pipeline": {"facecore.training.c"}}) == ["facecore.core.a -> facecore.networks.b"]
    bad = layer_violations(edges())
    assert bad == [], "a layer imports a layer above it: " + "; ".join(bad)


def test_every_module_sits_in_a_layer():
    stray = sorted(set(module_files()) - ROOT_MODULES - {m for m in module_files() if layer_of(m)})
    assert stray == [], f"modules outside the layers {sorted(LAYERS)}: {stray}"


def test_facecore_modules_are_imported_at_module_top():
    mods = module_files()
    inside = []
    for name, p in mods.items():
        tree = ast.parse(p.read_text())
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            inside += [f"{p.relative_to(PKG.parent)}:{node.lineno} imports {t}"
                       for node, t in imports_of(fn, name, p.name == "__init__.py", mods)]
    assert inside == [], "import these at module top: " + "; ".join(inside)


def test_every_module_imports():
    for m in pkgutil.walk_packages([str(PKG)], "facecore."):
        importlib.import_module(m.name)
