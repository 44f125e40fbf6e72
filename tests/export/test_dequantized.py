"""dequantized_copy: the float twin of int8 (integer, dynamic) models computes what the float model did,
within the int8 quantization error, and leaves the quantized model untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim.export.dequantized import dequantized_copy, is_integer_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_


def _model(cell: str, kind: InputKind) -> SequenceModel:
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=9 if kind is InputKind.EMBEDDING else 4, embed_size=7,
                     layers=[LayerShape(hidden_size=8), LayerShape(hidden_size=6)], output_size=9)
    return SequenceModel(spec).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", [Int8Mode.INTEGER, Int8Mode.DYNAMIC])
@pytest.mark.parametrize("kind", [InputKind.EMBEDDING, InputKind.LINEAR])
def test_float_twin_of_an_int8_model(cell, mode, kind):
    fp = _model(cell, kind)
    x = torch.randint(0, 9, (20, 3)) if kind is InputKind.EMBEDDING else torch.randn(20, 3, 4)
    q = quantize_int8_(copy.deepcopy(fp), Int8Config(mode=mode), calibration=[x])
    before = {k: v.clone() for k, v in q.state_dict().items()}
    twin, done = dequantized_copy(q)
    assert "rnn.layers.0" in done and "decoder" in done
    assert all(p.dtype == torch.float32 for p in twin.state_dict().values())
    assert is_integer_model(q) == (mode is Int8Mode.INTEGER) and not is_integer_model(twin)
    with torch.no_grad():
        err = (twin(x)[0] - fp(x)[0]).abs().max().item()
        scale = fp(x)[0].abs().max().item()
    assert 0 < err < 0.05 * scale  # int8 weight error, not a layout error
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in before.items())


def test_a_float_model_is_returned_as_a_copy():
    fp = _model("lstm", InputKind.EMBEDDING)
    twin, done = dequantized_copy(fp)
    assert done == [] and twin is not fp
    assert all(torch.equal(v, fp.state_dict()[k]) for k, v in twin.state_dict().items())
