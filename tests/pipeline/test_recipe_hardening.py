"""Malformed recipes end in a short RecipeError naming the problem, never a traceback or a hang."""

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnslim.pipeline.recipe import MAX_ERROR_CHARS, Recipe, RecipeError, load_recipe

HEAD = "version: 1\nname: x\nstages:\n"


def _err(text: str) -> str:
    with pytest.raises(RecipeError) as e:
        Recipe.from_yaml(text, source="r.yaml")
    msg = str(e.value)
    assert len(msg) <= MAX_ERROR_CHARS
    return msg


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400"])
def test_non_finite_floats_rejected(value):
    assert "finite" in _err(HEAD + f"  - kind: finetune\n    max_steps: 3\n    lr: {value}\n")


@pytest.mark.parametrize("field,value", [("max_steps", "1e20"), ("max_steps", "100000000"), ("lr", "1e300"),
                                         ("lr", "1000"), ("batch_size", "1000000")])
def test_time_and_memory_fields_bounded(field, value):
    msg = _err(HEAD + f"  - kind: finetune\n    max_steps: 3\n    {field}: {value}\n".replace(
        "max_steps: 3\n    max_steps", "max_steps"))
    assert field in msg and "stage #1" in msg


def test_prune_nm_m_bounded():
    msg = _err(HEAD + "  - kind: prune_nm\n    n: 2\n    m: 1000000000\n")
    assert "'m'" in msg and "64" in msg


def test_deep_nesting_is_an_error_not_recursion():
    assert "nested deeper" in _err("version: 1\nname: x\nstages: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested" in _err("version: 1\nname: x\nstages: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")


def test_billion_laughs_refused_at_the_first_alias():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    msg = _err("\n".join(lines) + "\n")
    # refused at the first alias (line 2, column 8), before anything is expanded: no time bound needed
    assert "aliases" in msg and "line 2, column 8" in msg


def test_long_or_odd_name_refused():
    assert "too large" in _err("version: 1\nname: " + "x" * 10_000_000 + "\nstages:\n  - kind: cast\n")
    assert "name" in _err("version: 1\nname: " + "x" * 5000 + "\nstages:\n  - kind: cast\n")
    assert "name" in _err("version: 1\nname: " + "x" * 201 + "\nstages:\n  - kind: cast\n    dtype: bf16\n")
    assert "name" in _err("version: 1\nname: ../../etc\nstages:\n  - kind: cast\n    dtype: bf16\n")
    Recipe.from_yaml("version: 1\nname: lstm-prune_0.5 (v2)\nstages:\n  - kind: cast\n    dtype: bf16\n")


def test_errors_are_capped(tmp_path):
    msg = _err(HEAD + "  - kind: " + "k" * 9000 + "\n")
    assert len(msg) <= MAX_ERROR_CHARS
    p = tmp_path / "r.yaml"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(RecipeError, match="UTF-8"):
        load_recipe(p)


def test_yaml_tags_and_odd_types():
    for text in ["!!python/object:os.system x\n", "version: 1\nname: 2001-01-01\nstages: [{kind: cast}]\n",
                 "version: !!binary aGVsbG8=\nname: x\nstages: [{kind: cast}]\n", "- 1\n- 2\n", "",
                 "version: true\nname: x\nstages: [{kind: cast}]\n", "version: 1\nname: x\nstages: {kind: cast}\n",
                 HEAD + "  - kind: [1, 2]\n", HEAD + "  - 7\n", "version: 1\nname: x\nseed: 1e99\nstages: [{kind: cast}]\n"]:
        _err(text)


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
def test_rundir_files_respect_umask(tmp_path):
    from rnnslim.pipeline.rundir import write_json
    from rnnslim.utils.atomic import atomic_directory

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_directory(tmp_path / "d", marker="m") as d:
            (d / "m").write_text("")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                       max_leaves=12)
_kinds = st.sampled_from(["finetune", "cast", "prune", "prune_nm", "prune_block", "prune_units", "remove_layers",
                          "int8_dynamic", "quantize", "qat", "group_lasso", "nope", ""])
_fields = st.sampled_from(["lr", "max_steps", "m", "n", "sparsity", "batch_size", "seq_len", "dtype", "layers",
                           "calibration_batches", "finetune_steps", "bits", "kind", "zzz"])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=_kinds, fields=st.dictionaries(_fields, _values, max_size=4), name=_values, seed=_values)
def test_property_any_mutation_is_accepted_or_a_recipe_error(kind, fields, name, seed):
    import yaml

    data = {"version": 1, "name": name, "seed": seed, "stages": [{"kind": kind, **fields}]}
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        r = Recipe.from_yaml(text, source="r.yaml")
    except RecipeError as e:
        assert len(str(e)) <= MAX_ERROR_CHARS
        return
    dumped = r.to_yaml()  # an accepted recipe round-trips with finite numbers only
    assert ".inf" not in dumped and ".nan" not in dumped and "null" not in dumped.split("lr:")[-1][:6]
    for v in (fields.get("lr"), fields.get("max_steps")):
        if isinstance(v, float):
            assert math.isfinite(v)
