"""The pure-integer reference (integer.py / integer_cells.py) vs float torch models."""

from __future__ import annotations

import copy

import pytest
import torch
from int8_models import float_model_64_40, integer_copy, random_inputs
from torch import nn

from rnnslim.models.sequence import InputKind, Readout
from rnnslim.quantize.int8 import Int8Config, Int8Mode, collect_ranges, quantize_int8_
from rnnslim.quantize.int8.integer import (
    IntegerEmbedding,
    IntegerLinear,
    IntegerRecurrent,
    cell_frac_bits,
)
from rnnslim.quantize.int8.integer_cells import run_direction
from rnnslim.quantize.primitives import sqnr_db

MIN_SQNR_DB = 30.0  # measured 37-48 dB on these models


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_integer_model_sqnr(cell, bidirectional):
    model = float_model_64_40(cell, bidirectional)
    x = random_inputs(model, 60, 3, 7)
    with torch.no_grad():
        ref, _ = model(x)
    q = integer_copy(model)
    assert isinstance(q.embedding, IntegerEmbedding) and isinstance(q.decoder, IntegerLinear)
    assert all(isinstance(layer, IntegerRecurrent) for layer in q.rnn.layers)
    y, _ = q(x)
    assert sqnr_db(ref, y) > MIN_SQNR_DB


def test_data_free_integer_model():
    model = float_model_64_40("lstm")
    x = random_inputs(model, 60, 2, 8)
    with torch.no_grad():
        ref, _ = model(x)
    q = integer_copy(model, calib=False)
    assert all(layer.cell_frac == 10 for layer in q.rnn.layers)  # default Q5.10 cell state
    assert sqnr_db(ref, q(x)[0]) > MIN_SQNR_DB


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_round_trip_through_floats_is_exact(cell):
    """Two halves with the state carried == one pass: the float boundary loses nothing."""
    q = integer_copy(float_model_64_40(cell, bidirectional=False))
    x = random_inputs(q, 40, 2, 9)
    full, st_full = q(x)
    a, st = q(x[:17])
    b, st2 = q(x[17:], st)
    assert torch.equal(torch.cat([a, b]), full)
    flat = lambda s: [t for layer in s for t in (layer if isinstance(layer, tuple) else (layer,))]  # noqa: E731
    assert all(torch.equal(u, v) for u, v in zip(flat(st2), flat(st_full)))


def test_integer_step_has_no_float():
    q = integer_copy(float_model_64_40("lstm"))
    layer = q.rnn.layers[0]
    floats = {n for n, b in layer.named_buffers() if b.is_floating_point()}
    # float32 scales exist only for the boundary and for inspection; the step never reads them
    assert floats == {"w_ih_scale", "w_hh_scale", "x_scale", "h_scale"}
    x8 = torch.randint(-127, 128, (5, 2, layer.input_size), dtype=torch.int32)
    states = layer.state_to_int(None, 2, "cpu")
    y8, (h8, c) = run_direction(x8, states[0], layer.direction(0), layer.layer_params(), reverse=False)
    assert not y8.is_floating_point() and not c.is_floating_point()
    assert int(y8.abs().max()) <= 127 and int(c.abs().max()) <= 32768


def test_cell_state_format_follows_calibration():
    assert cell_frac_bits(46.0, 1.25) == 9  # 57.5 needs 6 integer bits: Q6.9
    assert cell_frac_bits(0.5, 1.0) == 15
    assert cell_frac_bits(0.0, 1.25) == 15
    with pytest.raises(ValueError, match="int16"):
        cell_frac_bits(1e6, 1.0)
    model = float_model_64_40("lstm")
    ranges = collect_ranges(model, [random_inputs(model, 40, 4, 0)])
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=ranges)
    for layer, r in zip(q.rnn.layers, ranges.layers):
        assert 2.0 ** (15 - layer.cell_frac) >= 1.25 * r.c


def test_features_inputs():
    for kind in (InputKind.LINEAR, InputKind.IDENTITY):
        model = float_model_64_40("gru", input_kind=kind, readout=Readout.MEAN)
        x = random_inputs(model, 30, 3, 4)
        with torch.no_grad():
            ref, _ = model(x)
        q = integer_copy(model)
        assert sqnr_db(ref, q(x)[0]) > MIN_SQNR_DB - 3
        if kind is InputKind.LINEAR:
            assert isinstance(q.input_proj, IntegerLinear) and q.input_proj.output.value == "int8"


def test_unsupported_settings_fail_clearly():
    with pytest.raises(ValueError, match="proj_size"):
        integer_copy(float_model_64_40("lstm", proj=16))
    with pytest.raises(ValueError, match="ReLU"):
        integer_copy(float_model_64_40("rnn_relu"))
    with pytest.raises(ValueError, match="calibration"):
        integer_copy(float_model_64_40("gru", input_kind=InputKind.LINEAR), calib=False)
    with pytest.raises(ValueError, match="whole model"):
        Int8Config(mode=Int8Mode.INTEGER, quantize_decoder=False)
    with pytest.raises(ValueError, match="cell_frac"):
        IntegerRecurrent("lstm", 4, 4, cell_frac=16)
    with pytest.raises(ValueError, match="single-layer"):
        IntegerRecurrent.from_float(nn.LSTM(4, 4, num_layers=2), 0.01)
