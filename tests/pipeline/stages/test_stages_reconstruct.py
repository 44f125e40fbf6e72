"""Recipe stages prune_obs, quantize_gptq and prune_units (with its re-fit) run in a pipeline
and their results load back from disk."""

import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.runner import run_pipeline
from rnnslim.prune.masks import masks_from_model
from rnnslim.quantize.lowbit import QuantRecurrent
from rnnslim.tasks.charlm import CharLMTask

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


def _model(task):
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=len(task.vocab), embed_size=16,
                     layers=[LayerShape(hidden_size=32)] * 2, output_size=len(task.vocab), dropout=0.0)
    return SequenceModel(spec)


def _recipe(stages):
    return Recipe.model_validate({"version": 1, "name": "t", "stages": stages,
                                  "measure": {"eval_max_steps": 200}})


def test_obs_then_gptq_pipeline(tmp_path):
    task = CharLMTask(text=TEXT)
    res = run_pipeline(_model(task), _recipe([
        {"kind": "prune_obs", "sparsity": 0.5, "calibration_batches": 2},
        {"kind": "quantize_gptq", "bits": 4, "group_size": 16, "calibration_batches": 2}]), task, tmp_path / "r",
        progress=False)
    obs = res.rows[1]
    assert obs.record["method"]["method"] == "obs" and abs(obs.record["total"]["sparsity"] - 0.5) < 0.02
    assert isinstance(res.model.rnn.layers[0], QuantRecurrent)
    w = res.model.rnn.layers[0].qweights["weight_hh_l0"].dequantize()
    assert abs(float((w == 0).float().mean()) - 0.5) < 0.05  # GPTQ kept the zeros of the pruning stage


def test_prune_units_refits_by_default(tmp_path):
    task = CharLMTask(text=TEXT)
    res = run_pipeline(_model(task), _recipe([{"kind": "prune_units", "ratio": 0.5, "refit_batches": 2},
                                              {"kind": "prune_obs", "sparsity": 0.3, "calibration_batches": 2}]),
                       task, tmp_path / "r", progress=False)
    assert res.rows[1].record["refit"]["ops"] == 5
    assert res.model.rnn.layers[0].hidden_size == 16
    assert masks_from_model(res.model)  # the obs stage's zeros are marked for storage and later fine-tuning
