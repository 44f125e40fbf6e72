"""The package's imports form a DAG with the pipeline above the techniques.

Every import counts (also those inside functions), except `if TYPE_CHECKING:` blocks: a
lazy import is still a dependency. A technique package (prune, quantize, reconstruct,
export, runtime, measure, report, tasks, ...) never imports the pipeline or the command
line: the pipeline turns their verbs into stages (rnnslim.pipeline.stages).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = ("rnnslim.pipeline", "rnnslim.search", "rnnslim.cli", "rnnslim.demo")
ABOVE_PIPELINE = ("rnnslim.search", "rnnslim.cli")  # only the command line may import the search


def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "rnnslim").rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnslim"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rnnslim"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(f, mods) - {m} for m, f in mods.items()}


def test_no_import_cycles():
    g = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    path: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(g[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := dfs(w)):
                return cycle
        path.pop()
        state[v] = 2
        return None

    for v in sorted(g):
        if v not in state and (cycle := dfs(v)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_techniques_do_not_import_the_pipeline():
    bad = [f"{m} imports {sorted(d for d in deps if d.startswith(TOP))}" for m, deps in _graph().items()
           if m != "rnnslim" and not m.startswith(TOP) and any(d.startswith(TOP) for d in deps)]
    assert not bad, "\n".join(bad)


def test_only_the_command_line_imports_the_search():
    bad = [f"{m} imports {sorted(d for d in deps if d.startswith('rnnslim.search'))}" for m, deps in _graph().items()
           if m != "rnnslim" and not m.startswith(ABOVE_PIPELINE) and any(d.startswith("rnnslim.search") for d in deps)]
    assert not bad, "\n".join(bad)


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """A planted cycle is found (the test above is not vacuous)."""
    g = _graph()
    g["rnnslim.utils.atomic"] = g["rnnslim.utils.atomic"] | {"rnnslim.io.format"}  # io.format imports utils.atomic
    monkeypatch.setattr(__import__(__name__), "_graph", lambda: g)
    try:
        test_no_import_cycles()
    except AssertionError as e:
        assert "rnnslim.utils.atomic" in str(e)
    else:
        raise AssertionError("the planted cycle was not found")
