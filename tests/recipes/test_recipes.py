"""The built-in recipes: every one loads, is usable by name, and says what it costs and buys."""

import re

import pytest

from rnnslim.pipeline.recipe import RecipeError, find_recipe, load_recipe
from rnnslim.recipes import builtin_recipe_path, builtin_recipes, recipe_description

WORTH_COPYING = ("deploy-int8", "search-int3", "recover-distill", "small-lowrank")


def test_the_recipes_worth_copying_ship_and_load():
    found = builtin_recipes()
    assert set(WORTH_COPYING) | {"demo"} <= set(found)
    for name, path in found.items():
        recipe = load_recipe(path)
        assert recipe.name == name  # the run's name is the name users type
        # a built-in never points at data relative to the package folder
        assert recipe.task is None or recipe.task.data is None


@pytest.mark.parametrize("name", WORTH_COPYING)
def test_each_description_names_the_reference_model_and_its_numbers(name):
    text = recipe_description(builtin_recipes()[name].read_text())
    assert "charlstm-512x2" in text and "BENCHMARKS.md" in text and "Costs" in text
    assert re.search(r"[+-]\d\.\d+ %", text)  # the loss change it made (a fine-tuned cut can lower it)
    assert "Same stages as" not in text  # the second paragraph is detail, not description


def test_description_is_the_first_comment_paragraph():
    text = "# one\n# two\n#\n# detail\nversion: 1\n"
    assert recipe_description(text) == "one two"
    assert recipe_description("version: 1\n") == ""


def test_by_name_with_or_without_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_recipe("deploy-int8") == find_recipe("deploy-int8.yaml") == builtin_recipe_path("deploy-int8")
    assert [s.kind for s in load_recipe("deploy-int8").stages] == ["prune_units", "finetune", "int8_integer"]
    # a file of that name in the working directory wins: a path always means the file
    (tmp_path / "deploy-int8.yaml").write_text("version: 1\nname: mine\nstages:\n  - {kind: cast, dtype: bf16}\n")
    assert load_recipe("deploy-int8.yaml").name == "mine"
    assert load_recipe("deploy-int8").name == "deploy-int8"


def test_a_name_that_is_neither_lists_the_built_ins(tmp_path):
    with pytest.raises(RecipeError) as e:
        find_recipe("deploy-int9")
    msg = str(e.value)
    assert "neither a file nor a built-in" in msg and "did you mean `deploy-int8`" in msg
    assert all(name in msg for name in WORTH_COPYING)
    with pytest.raises(RecipeError, match="not found"):
        find_recipe(tmp_path / "sub" / "demo.yaml")  # a path is never read as a name


def _committed_recipes():
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "recipes"
    return sorted(builtin_recipes().values()) + sorted(bench.glob("*.yaml"))


@pytest.mark.parametrize("path", _committed_recipes(), ids=lambda p: p.name)
def test_a_recipe_that_quotes_numbers_pins_every_field_whose_default_changed(path):
    # each built-in and benchmark recipe states (or feeds a table of) measured numbers; a field whose
    # default has changed since (a stage's hash_legacy_defaults, e.g. prune_units' reduce and refit) left
    # unset would re-run under the NEW default and silently stop reproducing them
    import yaml

    from rnnslim.pipeline.stage import get_stage

    for i, stage in enumerate(yaml.safe_load(path.read_text())["stages"]):
        cls, _ = get_stage(stage["kind"])
        missing = [f for f in getattr(cls, "hash_legacy_defaults", {}) if f not in stage]
        assert not missing, f"{path.name} stage {i} ({stage['kind']}) leaves {missing} to the current default"
