"""Built-in recipes shipped with the package (YAML files in this folder), usable by name.

    rnnslim compress MODEL --recipe deploy-int8 --out runs/d     # or deploy-int8.yaml, or a path

Each file's leading comment is its documentation; its first paragraph (up to the first bare `#`
line) is the description `rnnslim recipes` prints: what the recipe costs and buys on the
reference model, with numbers from BENCHMARKS.md. Built-ins carry no `task:` section, so they
never depend on a data path relative to this folder: the task and data come from the model and
`--data`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SUFFIX = ".yaml"


def builtin_recipes() -> dict[str, Path]:
    """{name: path of the YAML file} for every built-in recipe, sorted by name."""
    root = Path(str(resources.files(__name__)))
    return {p.name[: -len(SUFFIX)]: p for p in sorted(root.glob(f"*{SUFFIX}"))}


def builtin_recipe_path(name: str) -> Path | None:
    """The built-in recipe called `name` (with or without .yaml), or None when there is none."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    return builtin_recipes().get(stem)


def recipe_description(text: str) -> str:
    """The first paragraph of a recipe's leading comment, joined into one line."""
    words: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if not body:
            if words:
                break
            continue
        words.append(body)
    return " ".join(words)
