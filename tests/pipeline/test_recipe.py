"""Recipe YAML: typed stages, round trip, and the errors users see."""

from __future__ import annotations

import pytest

from rnnslim.pipeline.builtin_stages import CastConfig, CastDType, FinetuneConfig
from rnnslim.pipeline.recipe import (
    MeasureSection,
    Recipe,
    RecipeError,
    TaskSection,
    load_recipe,
)
from rnnslim.train import ScheduleKind

EXAMPLE = """\
version: 1
name: lstm-fp16
seed: 7
task:
  name: charlm
  data: ../shared/data/tinyshakespeare.txt
  options: {max_chars: 200000}
measure:
  latency: true
  threads: 2
stages:
  - kind: finetune
    max_steps: 300
    lr: 1.0e-3
    schedule: linear
  - kind: cast
    dtype: fp16
"""


def test_example_parses_into_typed_stage_configs():
    r = Recipe.from_yaml(EXAMPLE)
    assert r.version == 1 and r.name == "lstm-fp16" and r.seed == 7
    assert r.task == TaskSection(name="charlm", data="../shared/data/tinyshakespeare.txt",
                                 options={"max_chars": 200000})
    assert r.measure == MeasureSection(latency=True, threads=2)
    ft, cast = r.stages
    assert isinstance(ft, FinetuneConfig) and ft.max_steps == 300 and ft.lr == 1e-3
    assert ft.lr_schedule is ScheduleKind.LINEAR  # `schedule` is the old name of lr_schedule
    assert isinstance(cast, CastConfig) and cast.dtype is CastDType.FP16


def test_yaml_round_trip_keeps_every_stage_field(tmp_path):
    r = Recipe.from_yaml(EXAMPLE)
    text = r.to_yaml()
    assert "lr: 0.001" in text and "dtype: fp16" in text and "batch_size: 32" in text  # defaults resolved
    assert Recipe.from_yaml(text) == r
    p = tmp_path / "r.yaml"
    p.write_text(text)
    assert load_recipe(p) == r
    assert r.task_data_path(tmp_path) == tmp_path / "../shared/data/tinyshakespeare.txt"


def _error(text: str) -> str:
    with pytest.raises(RecipeError) as e:
        Recipe.from_yaml(text, source="my.yaml")
    return str(e.value)


def test_malformed_yaml_names_the_line():
    msg = _error("version: 1\nname: x\nstages: [\n  - kind: cast\n")
    assert "my.yaml" in msg and "not valid YAML" in msg and "line" in msg


def test_unknown_kind_lists_available_kinds():
    msg = _error("version: 1\nname: x\nstages:\n  - kind: cast\n    dtype: bf16\n  - kind: prunee\n")
    assert "stage #2" in msg and "'prunee'" in msg
    assert "available:" in msg and "cast" in msg and "finetune" in msg


def test_wrong_field_name_and_type_name_the_stage():
    msg = _error("version: 1\nname: x\nstages:\n  - kind: finetune\n    lrr: 0.1\n    epochs: many\n")
    assert "stage #1 (kind 'finetune')" in msg
    assert "lrr" in msg and "unknown field" in msg
    assert "epochs" in msg and "'many'" in msg
    msg = _error("version: 1\nname: x\nstages:\n  - kind: cast\n    dtype: fp8\n")
    assert "dtype" in msg and "fp16" in msg and "bf16" in msg


def test_every_problem_is_shown_whole_one_per_line():
    # five problems over two stages: none is cut short, none is lost after the first stage's
    long_value = "x" * 90
    msg = _error("version: 1\nname: x\nstages:\n  - kind: finetune\n    max_step: 100\n    lr: -1\n"
                 f"    batch_size: {long_value}\n    dropout: 7\n  - kind: prune_units\n    ratio: 3\n")
    head, *lines = msg.splitlines()
    assert head == "my.yaml: invalid recipe (5 problems):"
    assert len(lines) == 5 and all(line.startswith("  stage #") for line in lines)
    assert "more characters" not in msg and ":;" not in msg
    assert sum("stage #1 (kind 'finetune')" in line for line in lines) == 4
    assert any(line.strip().startswith("stage #2 (kind 'prune_units'): ratio:") for line in lines)
    assert long_value in msg  # the offending input, quoted whole (it is under 100 characters)


def test_unknown_field_suggests_the_nearest_one():
    msg = _error("version: 1\nname: x\nstages:\n  - kind: finetune\n    max_step: 10\n")
    assert "max_step: unknown field; did you mean `max_steps`?" in msg
    msg = _error("version: 1\nname: x\nsead: 1\nstages:\n  - {kind: cast, dtype: fp16}\n")
    assert "sead: unknown field; did you mean `seed`?" in msg
    msg = _error("version: 1\nname: x\nmeasure: {latncy: true}\nstages:\n  - {kind: cast, dtype: fp16}\n")
    assert "measure.latncy: unknown field; did you mean `latency`?" in msg
    msg = _error("version: 1\nname: x\nstages:\n  - kind: finetune\n    zzzz: 1\n")
    assert "zzzz: unknown field (not allowed here)" in msg


def test_version_is_required_and_checked():
    assert "version 2 is not supported" in _error("version: 2\nname: x\nstages: []\n")
    assert "missing `version: 1`" in _error("name: x\nstages: []\n")


def test_structure_errors():
    assert "must be a mapping" in _error("- kind: cast\n")
    assert "each stage must be a mapping" in _error("version: 1\nname: x\nstages:\n  - cast\n")
    assert "'kind'" in _error("version: 1\nname: x\nstages:\n  - dtype: fp16\n")
    assert "unknown field" in _error("version: 1\nname: x\nsead: 1\nstages:\n  - {kind: cast, dtype: fp16}\n")
    assert "stages" in _error("version: 1\nname: x\nstages: []\n")  # at least one stage


def test_yaml_tags_are_never_executed():
    msg = _error("version: 1\nname: !!python/object/apply:os.system ['echo hi']\nstages: []\n")
    assert "not valid YAML" in msg


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_docstring_example_is_a_valid_recipe():
    import textwrap

    from rnnslim.pipeline import recipe as mod

    block = mod.__doc__.split("\n\n", 1)[1].split("\n\nEach stage")[0]
    r = Recipe.from_yaml(textwrap.dedent(block))
    assert [s.kind for s in r.stages] == ["finetune", "cast"] and r.measure.eval_max_steps is None


def test_prune_units_refit_auto_is_resolved_by_what_follows():
    """`refit: auto` (the default): no re-fit before a stage that trains the model, a re-fit otherwise."""
    stages = [{"kind": "prune_units", "ratio": 0.25}, {"kind": "prune", "sparsity": 0.5},
              {"kind": "prune_units", "ratio": 0.1}, {"kind": "prune", "sparsity": 0.6, "finetune_steps": 5},
              {"kind": "prune_units", "ratio": 0.1, "refit": True}, {"kind": "finetune", "max_steps": 10},
              {"kind": "prune_units", "ratio": 0.1}, {"kind": "int8_integer"}]
    r = Recipe.from_dict({"version": 1, "name": "t", "stages": stages})
    assert [s.refit for s in r.stages if s.kind == "prune_units"] == [False, False, True, True]
    assert Recipe.from_yaml(r.to_yaml()).stages == r.stages  # written resolved: reloads the same
