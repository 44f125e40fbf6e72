"""Recipe fields that name parts of the model are checked against it before any stage runs
(issue 19 §7): a clear RecipeError naming the stage, kind, field and the valid range, and
nothing measured or written for the stages."""

from __future__ import annotations

import pytest

from rnnslim.pipeline.recipe import Recipe, RecipeError
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.pipeline.stages.structured import PruneUnitsStage


@pytest.fixture()
def model(tiny_lm):
    return tiny_lm(num_layers=2)  # task, tiny_lm: tests/pipeline/conftest.py


def _run(model, task, out, *stages):
    recipe = Recipe.from_dict({"version": 1, "name": "r", "stages": list(stages)})
    return run_pipeline(model, recipe, task, out, progress=False)


@pytest.mark.parametrize("stage,match", [
    ({"kind": "prune_units", "ratio": 0.5, "layers": [2]},
     r"stage #2 \(kind 'prune_units'\): field 'layers': layer 2 does not exist; the model has 2 recurrent layers "
     r"\(0..1, or -2..-1 counting from the last\)"),
    ({"kind": "prune_units", "per_layer": {"rnn.layers.5": 0.5}}, "field 'per_layer': layer 'rnn.layers.5'"),
    ({"kind": "remove_layers", "layers": [-3]}, "field 'layers': layer -3 does not exist"),
    ({"kind": "group_lasso", "lam": 0.1, "threshold": 0.1, "layers": [4]}, "field 'layers': layer 4"),
    ({"kind": "prune", "sparsity": 0.5, "layers": [2]}, r"field 'layers': layer 2 .*\(0..1\)"),
    ({"kind": "prune", "sparsity": 0.5, "layers": [-1]}, r"field 'layers': layer -1 .*\(0..1\)"),
    ({"kind": "prune_nm", "layers": [3]}, "field 'layers': layer 3"),
    ({"kind": "dct_sparsify", "keep": 0.5, "layers": [2]}, "field 'layers': layer 2"),
    ({"kind": "lowrank", "energy": 0.9, "layers": [2]}, "field 'layers': layer 2"),
    ({"kind": "lowrank", "rank": {"input.3": 4}}, "field 'rank': layer '3'"),
    ({"kind": "to_lstmp", "proj_size": [8, 8, 8]}, "field 'proj_size': 3 sizes for 2 layers"),
    ({"kind": "to_lstmp", "proj_size": 16}, "field 'proj_size': 16 for layer 0 must be below its hidden size 16"),
    ({"kind": "delta", "threshold": {4: 2}}, "field 'threshold': layer 4"),
    ({"kind": "early_exit", "weights": [1.0, 1.0, 1.0]}, "field 'weights': 3 values, one per recurrent layer"),
])
def test_fields_naming_missing_layers_fail_before_anything_runs(model, task, tmp_path, stage, match):
    with pytest.raises(RecipeError, match=match):
        _run(model, task, tmp_path / "run", {"kind": "cast", "dtype": "bf16"}, stage)
    assert not (tmp_path / "run" / "stages").exists()  # the input was neither saved nor measured


def test_a_stage_after_a_structural_change_is_checked_against_the_model_it_gets(model, task, tmp_path):
    # remove_layers leaves one layer, so layer 1 no longer exists when prune_units starts
    with pytest.raises(RecipeError, match=r"stage #2 \(kind 'prune_units'\): field 'layers': layer 1 does not "
                                          r"exist; the model has 1 recurrent layer \(0..0"):
        _run(model, task, tmp_path / "run", {"kind": "remove_layers", "layers": [1]},
             {"kind": "prune_units", "ratio": 0.5, "layers": [1]})
    assert (tmp_path / "run" / "stages" / "01-remove_layers" / "model" / "model.json").exists()


def test_valid_layer_keys_pass(model):
    for layers in ([0, 1], [-1], ["rnn.layers.1"], ["1"]):
        PruneUnitsStage(ratio=0.5, layers=layers).check_against(model)
