"""GPTQ for the int8 paths: the walked weights lie exactly on the grid the int8 conversion
derives, they reproduce the float model better than rounding, and the stage runs it."""

import copy

import pytest
import torch
from reconstruct_helpers import batches, small_model

from rnnslim.quantize.int8.qweights import dequantize_rows, quantize_rows
from rnnslim.reconstruct.gptq_int8 import gptq_int8_weights_


def _rounded(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 2 and not n.startswith("embedding"):
                p.copy_(dequantize_rows(*quantize_rows(p)))
    return m


@torch.no_grad()
def _err(m, ref, data):
    return sum(float((m(b.inputs)[0] - ref(b.inputs)[0]).pow(2).sum()) for b in data)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_walked_weights_are_on_the_int8_grid_and_closer_than_rounding(cell):
    dense, data = small_model(cell, hidden=(32, 32)), batches(8)
    m = copy.deepcopy(dense)
    errors = gptq_int8_weights_(m, data, calibration_batches=8)
    assert set(errors) == {"rnn.layers.0.weight_ih_l0", "rnn.layers.0.weight_hh_l0", "rnn.layers.1.weight_ih_l0",
                           "rnn.layers.1.weight_hh_l0", "decoder.weight"}
    for n in errors:
        w = m.get_parameter(n).detach()
        assert torch.equal(dequantize_rows(*quantize_rows(w)), w), n  # the int8 conversion keeps them as they are
    assert _err(m, dense, data) < _err(_rounded(dense), dense, data)


def test_int8_integer_stage_with_gptq(tmp_path):
    from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
    from rnnslim.tasks.charlm import CharLMTask

    task = CharLMTask(text="so foul and fair a day I have not seen. " * 40)
    model = __import__("rnnslim.models.sequence", fromlist=["SequenceModel"]).SequenceModel(
        task.model_spec("lstm", hidden_size=16, num_layers=2))
    cfg = parse_stage({"kind": "int8_integer", "calibration_batches": 2, "gptq": True, "gptq_batches": 2})
    ctx = StageContext(task=task, work_dir=tmp_path, progress=False)
    out = get_stage("int8_integer")[1](model, cfg, ctx)
    assert len(ctx.record["gptq_relative_output_error"]) == 5 and ctx.record["mode"] == "integer"
    assert torch.isfinite(out(task.batches("valid", 1, 8).__next__().inputs)[0]).all()
