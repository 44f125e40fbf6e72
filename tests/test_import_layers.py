"""The package's imports go down the layers, and form no cycle anywhere.

Every import counts: those inside functions (a lazy import is still a dependency) and
those under `if TYPE_CHECKING:` (a type-only cycle is still two modules that need each
other). LAYERS below is the one statement of the order, bottom first; a package may import
its own layer or any layer below it, never one above. Packages of one layer may import each
other, but the packages' graph must stay acyclic too. Imports by name (importlib) must go
down as well, except the registry loaders listed in BY_NAME_LOADERS. docs/ARCHITECTURE.md
draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# bottom first; "rnnslim" is the package root (__version__ and lazy re-exports only)
LAYERS: list[tuple[str, ...]] = [
    ("rnnslim", "utils", "runtime", "recipes"),  # runtime: the torch-free runner of C exports
    ("recurrent",),  # gate layouts, cells, stacks, the torch contract
    ("models",),  # ModelSpec, SequenceModel
    ("tasks",),  # data, loss, metric; extended from above through tasks.extensions
    ("io",),  # the two file formats (model directory, edited directory)
    ("results", "verbs"),  # the result type and the verb plumbing every technique shares
    ("graph", "train"),  # coupling discovery; the training loop, fine-tuning, distillation
    ("quantize", "prune", "early_exit"),  # techniques
    ("lowrank", "reconstruct", "transform", "students"),  # techniques built on prune / quantize
    ("capture",),  # a user's module -> SequenceModel
    ("export",),  # ONNX, torch.export, C
    ("interop", "measure"),  # ONNX import; size, MACs, quality, latency, baselines
    ("report",),
    ("pipeline",),  # stages, recipes, the runner
    ("demo",),  # the one-command demo (below the search: only the command line imports the search)
    ("search",),
    ("cli",),
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# Imports by name (importlib.import_module with a module named in a string) go down the layers
# too, with these exceptions, each a plugin loader of a registry in a lower layer: before io
# rebuilds a saved model it imports the packages that register module kinds and tensor
# encodings. The package root's lazy re-exports (rnnslim.__init__) are the public facade and
# are not checked.
BY_NAME_LOADERS = {
    "rnnslim.io.modules": {"rnnslim.quantize.modules", "rnnslim.quantize.int8.modules", "rnnslim.early_exit.heads",
                           "rnnslim.lowrank.linear"},
    "rnnslim.io.encodings": {"rnnslim.quantize.storage"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "rnnslim").rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return out


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # every node: function bodies and TYPE_CHECKING blocks too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnslim") and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rnnslim"))
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(f, mods) - {m} for m, f in mods.items()}


def package(module: str) -> str:
    """rnnslim.prune.structured.cut -> prune; rnnslim.cli -> cli; rnnslim -> rnnslim."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    path: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(g.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := dfs(w)):
                return cycle
        path.pop()
        state[v] = 2
        return None

    for v in sorted(g):
        if v not in state and (cycle := dfs(v)):
            return cycle
    return None


def _package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, deps in g.items():
        out.setdefault(package(m), set()).update(package(d) for d in deps if package(d) != package(m))
    return out


def _upward(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({package(m)}, layer {RANK[package(m)]}) imports {d} ({package(d)}, layer {RANK[package(d)]})"
                  for m, deps in g.items() for d in deps if RANK[package(d)] > RANK[package(m)])


def _by_name(path: Path, known: dict[str, Path]) -> set[str]:
    """Modules named in string constants ("rnnslim.x.y" or "rnnslim.x.y:Name") of a module that
    calls importlib.import_module."""
    src = path.read_text()
    if "import_module" not in src:
        return set()
    names = {n.value.split(":")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant)
             and isinstance(n.value, str)}
    return {n for n in names if n in known}


def test_every_package_has_a_layer():
    missing = sorted({package(m) for m in _modules()} - set(RANK))
    assert not missing, f"packages with no place in LAYERS (add them to the test and docs/ARCHITECTURE.md): {missing}"


def test_no_module_import_cycles_type_checking_included():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_package_import_cycles():
    cycle = _cycle(_package_graph(_graph()))
    assert cycle is None, "packages importing each other: " + " -> ".join(cycle or [])


def test_imports_go_down_the_layers():
    bad = _upward(_graph())
    assert not bad, "imports that run up the layers:\n" + "\n".join(bad)


def test_imports_by_name_go_down_the_layers_except_the_registry_loaders():
    mods = _modules()
    named = {m: _by_name(f, mods) - {m} - BY_NAME_LOADERS.get(m, set()) for m, f in mods.items() if m != "rnnslim"}
    bad = _upward(named)
    assert not bad, "imports by name that run up the layers:\n" + "\n".join(bad)
    stale = {m: sorted(ok - _by_name(mods[m], mods)) for m, ok in BY_NAME_LOADERS.items() if ok - _by_name(mods[m], mods)}
    assert not stale, f"BY_NAME_LOADERS lists imports the code no longer makes: {stale}"


def test_the_checks_can_fail(tmp_path):
    """A planted cycle, a planted package cycle, a planted upward import and a type-only
    import are each found: the tests above are not vacuous."""
    g = _graph()
    planted = {**g, "rnnslim.utils.atomic": g["rnnslim.utils.atomic"] | {"rnnslim.io.format"}}
    assert "rnnslim.utils.atomic" in (_cycle(planted) or [])
    assert any(line.startswith("rnnslim.utils.atomic (utils") for line in _upward(planted))
    assert "utils" in (_cycle(_package_graph(planted)) or [])
    type_only = tmp_path / "m.py"
    type_only.write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                         "    from rnnslim.io.format import load_model\n\n\ndef f():\n    import rnnslim.tasks\n")
    assert _imports(type_only, _modules()) == {"rnnslim.io.format", "rnnslim.tasks"}
    by_name = tmp_path / "n.py"
    by_name.write_text("import importlib\n\nfor m in ('rnnslim.pipeline.runner', 'rnnslim.tasks.charlm:CharLMTask'):\n"
                       "    importlib.import_module(m)\n")
    assert _by_name(by_name, _modules()) == {"rnnslim.pipeline.runner", "rnnslim.tasks.charlm"}
