"""The test tree itself: pytest imports test files by basename (no __init__.py packages), so two
test files with one name in different folders break collection on a fresh clone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_file_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []


def test_no_test_file_imports_another_test_file():
    """Shared helpers live in modules of their own (tests/*.py helpers, conftest fixtures)."""
    import ast

    bad = []
    for p in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad += [f"{p.relative_to(TESTS)}: {n}" for n in names if n.split(".")[-1].startswith("test_")]
    assert bad == []
