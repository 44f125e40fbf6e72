"""Model-file round trip of every int8 kind, and the real size of what is stored."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors import safe_open

from rnnslim import load_model, save_model
from rnnslim.io.format import artifact_bytes
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_


def _model(cell="lstm", hidden=64, layers=2, bidirectional=False, vocab=30, input_kind=InputKind.EMBEDDING):
    torch.manual_seed(5)
    spec = ModelSpec(cell=cell, input_kind=input_kind, input_size=vocab, embed_size=hidden,
                     layers=[LayerShape(hidden_size=hidden, bidirectional=bidirectional)] * layers, output_size=vocab)
    return SequenceModel(spec).eval()


def _quantized(model, mode):
    x = [torch.randint(0, model.spec.input_size, (30, 4))] if model.spec.input_kind is InputKind.EMBEDDING \
        else [torch.randn(30, 4, model.spec.input_size)]
    return quantize_int8_(copy.deepcopy(model), Int8Config(mode=mode), calibration=x)


@pytest.mark.parametrize("mode", list(Int8Mode))
@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", True), ("rnn_tanh", False)])
def test_round_trip_reproduces_outputs(tmp_path, mode, cell, bidirectional):
    q = _quantized(_model(cell, bidirectional=bidirectional), mode)
    x = torch.randint(0, 30, (25, 2))
    y, st = q(x)
    path = save_model(q, tmp_path / "m")
    loaded = load_model(path)
    assert [type(m) for m in loaded.modules()] == [type(m) for m in q.modules()]
    y2, st2 = loaded(x)
    assert torch.equal(y, y2)
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        w = f.get_tensor("rnn.layers.0.w_hh")
    assert w.dtype == torch.int8


def test_features_model_round_trip(tmp_path):
    q = _quantized(_model("gru", input_kind=InputKind.LINEAR, vocab=6), Int8Mode.INTEGER)
    x = torch.randn(10, 2, 6)
    loaded = load_model(save_model(q, tmp_path / "f"))
    assert torch.equal(q(x)[0], loaded(x)[0])


def test_artifact_is_about_a_quarter_of_fp32(tmp_path):
    """A mid-size model (LSTM 256 x 2, 65 symbols: ~1.09 M parameters, like charlstm-256x2)."""
    model = _model("lstm", hidden=256, vocab=65)
    fp32 = artifact_bytes(save_model(model, tmp_path / "fp32"))
    for mode in Int8Mode:
        size = artifact_bytes(save_model(_quantized(model, mode), tmp_path / mode.value))
        assert size <= 0.27 * fp32, f"{mode.value}: {size / fp32:.3f} of fp32"
        assert size >= 0.25 * fp32 * 0.98  # int8 codes really are one byte per weight


def test_loaded_integer_model_runs_in_the_kernel(tmp_path):
    from rnnslim.quantize.int8 import IntegerRunner
    from rnnslim.quantize.int8.kernel import KernelUnavailable

    q = _quantized(_model("lstm"), Int8Mode.INTEGER)
    loaded = load_model(save_model(q, tmp_path / "i"))
    try:
        a, b = IntegerRunner(q), IntegerRunner(loaded)
    except KernelUnavailable as e:
        pytest.skip(str(e))
    x = torch.randint(0, 30, (60,))
    assert torch.equal(a.run(x)[0], b.run(x)[0])
