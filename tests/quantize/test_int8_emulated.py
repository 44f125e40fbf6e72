"""Dynamic and static int8 layers vs PyTorch's own float modules (SQNR bounds)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rnnslim.models.sequence import (
    InputKind,
    LayerShape,
    ModelSpec,
    Readout,
    SequenceModel,
)
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.quantize.int8.calibrate import LayerRanges, _lstm_states
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.quantize.primitives import sqnr_db

# measured on these seeds: 38-50 dB (dynamic), 36-47 dB (static); the bound keeps a margin
MIN_SQNR_DB = 30.0


def _model(cell: str, bidirectional: bool, input_kind=InputKind.EMBEDDING, readout=Readout.ALL) -> SequenceModel:
    torch.manual_seed(1)
    spec = ModelSpec(cell=cell, input_kind=input_kind, input_size=30 if input_kind is InputKind.EMBEDDING else 6,
                     embed_size=48, layers=[LayerShape(hidden_size=64, bidirectional=bidirectional),
                                            LayerShape(hidden_size=40, bidirectional=bidirectional)],
                     output_size=30, readout=readout)
    return SequenceModel(spec).eval()


def _inputs(model: SequenceModel, T: int, B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if model.spec.input_kind is InputKind.EMBEDDING:
        return torch.randint(0, model.spec.input_size, (T, B), generator=g)
    return torch.randn(T, B, model.spec.input_size, generator=g)


@pytest.mark.parametrize("mode", [Int8Mode.DYNAMIC, Int8Mode.STATIC])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_two_layer_model_sqnr(mode, cell, bidirectional):
    model = _model(cell, bidirectional)
    calib = [_inputs(model, 40, 4, s) for s in range(3)]
    x = _inputs(model, 50, 3, 99)
    with torch.no_grad():
        ref, ref_state = model(x)
        q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=mode), calibration=calib)
        y, state = q(x)
    assert all(type(layer) is Int8Recurrent for layer in q.rnn.layers)
    assert isinstance(q.embedding, Int8Embedding) and isinstance(q.decoder, Int8Linear)
    assert sqnr_db(ref, y) > MIN_SQNR_DB
    for a, b in zip(ref_state, state):  # same state structure and shapes as torch
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        for ta, tb in zip(a, b):
            assert ta.shape == tb.shape
            assert sqnr_db(ta, tb) > MIN_SQNR_DB - 5


@pytest.mark.parametrize("cell, kw", [("lstm", {}), ("lstm", {"proj_size": 12}), ("gru", {}), ("rnn_relu", {}),
                                      ("lstm", {"bidirectional": True, "batch_first": True})])
def test_layer_matches_torch_module_with_initial_state(cell, kw):
    torch.manual_seed(2)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_relu": nn.RNN}[cell]
    extra = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    layer = cls(10, 24, **kw, **extra).eval()
    D, P = 2 if kw.get("bidirectional") else 1, kw.get("proj_size") or 24
    x = torch.randn(5, 20, 10) if kw.get("batch_first") else torch.randn(20, 5, 10)
    h0 = (torch.randn(D, 5, P) * 0.5, torch.randn(D, 5, 24)) if cell == "lstm" else torch.randn(D, 5, 24) * 0.5
    with torch.no_grad():
        ref, ref_st = layer(x, h0)
    h_amax = max(float(ref.abs().max()), float((h0[0] if cell == "lstm" else h0).abs().max()))
    xt = x.transpose(0, 1) if kw.get("batch_first") else x
    m_amax = float(_lstm_states(layer, xt)[2].abs().max()) if cell == "lstm" else 0.0
    for mode in (Int8Mode.DYNAMIC, Int8Mode.STATIC):
        ranges = LayerRanges(x=float(x.abs().max()), h=h_amax, m=m_amax)
        q = Int8Recurrent.from_float(layer, mode, ranges if mode is Int8Mode.STATIC else None)
        y, st = q(x, h0)
        assert y.shape == ref.shape
        assert sqnr_db(ref, y) > MIN_SQNR_DB - 2
        if cell == "lstm":
            assert st[0].shape == ref_st[0].shape and st[1].shape == ref_st[1].shape
        else:
            assert st.shape == ref_st.shape


def test_weights_are_int8_with_one_scale_per_gate_row():
    layer = nn.LSTM(8, 16)
    q = Int8Recurrent.from_float(layer, Int8Mode.DYNAMIC)
    assert q.w_ih.dtype == torch.int8 and q.w_ih.shape == (64, 8) and q.w_ih_scale.shape == (64,)
    assert int(q.w_ih.abs().max()) == 127  # symmetric per-row: each row reaches +-127
    deq = q.w_ih.float() * q.w_ih_scale[:, None]
    assert (deq - layer.weight_ih_l0).abs().max() <= q.w_ih_scale.max() / 2 + 1e-7


def test_features_input_and_last_readout():
    model = _model("gru", False, InputKind.LINEAR, Readout.LAST)
    calib = [_inputs(model, 30, 4, s) for s in range(2)]
    x = _inputs(model, 30, 3, 5)
    with torch.no_grad():
        ref, _ = model(x)
        q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.STATIC), calibration=calib)
        y, _ = q(x)
    assert isinstance(q.input_proj, Int8Linear) and y.shape == ref.shape
    assert sqnr_db(ref, y) > MIN_SQNR_DB


def test_keep_float_embedding_and_decoder():
    model = _model("lstm", False)
    q = quantize_int8_(copy.deepcopy(model), Int8Config(quantize_embedding=False, quantize_decoder=False))
    assert isinstance(q.embedding, nn.Embedding) and isinstance(q.decoder, nn.Linear)


def test_clear_errors():
    model = _model("lstm", False)
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.STATIC))
    q = quantize_int8_(copy.deepcopy(model), Int8Config())
    with pytest.raises(TypeError, match="quantize once"):
        quantize_int8_(q, Int8Config())
    with pytest.raises(ValueError, match="integer"):
        Int8Recurrent(Int8Mode.INTEGER, "lstm", 4, 4)
    with pytest.raises(ValueError, match="proj_size"):
        Int8Recurrent(Int8Mode.DYNAMIC, "gru", 4, 8, proj_size=2)
    with pytest.raises(ValueError):
        Int8Config(mode="int4")
