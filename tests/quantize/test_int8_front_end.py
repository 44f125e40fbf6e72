"""Fully integer int8 of a CRNN front end (windowed input projection + activation table): the
integer model stays near the float one, IntegerRunner (the C kernel) equals the torch integer
modules bit for bit, streaming refuses a windowed input, and the model file round-trips."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputActivation, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_
from rnnslim.quantize.int8.fixedpoint import Q8_MAX
from rnnslim.quantize.int8.integer_activation import IntegerActivation, activation_table

ACTS = [a for a in InputActivation if a is not InputActivation.NONE]


def _models(act="relu", window=5, padding=2, readout="last", cell="gru"):
    torch.manual_seed(0)
    spec = ModelSpec(cell=cell, input_kind="linear", input_size=3, embed_size=8, layers=[{"hidden_size": 12}],
                     output_size=4, readout=readout, input_window=window, input_padding=padding,
                     input_activation=act)
    f = SequenceModel(spec).eval()
    calib = [torch.randn(10, 4, 3) for _ in range(3)]
    q = quantize_int8_(copy.deepcopy(f), Int8Config(mode=Int8Mode.INTEGER), calib)
    return f, q


@pytest.mark.parametrize("act", ACTS)
def test_integer_model_is_near_the_float_one(act):
    f, q = _models(act)
    assert isinstance(q.input_act, IntegerActivation) and q.input_act.kind is act
    x = torch.randn(10, 6, 3)
    with torch.no_grad():
        a, b = f(x)[0], q(x)[0]
    assert float((a - b).abs().max() / a.abs().max()) < 0.05  # int8 tolerance
    assert not torch.equal(a, b)  # really quantized


def test_relu_table_is_max_zero_q_at_one_scale():
    table = activation_table("relu", 0.05, 0.05)
    q = torch.arange(-128, 128)
    assert torch.equal(table.long(), q.clamp(0, Q8_MAX))
    tanh = activation_table("tanh", 0.05, 1 / 127)
    assert int(tanh[128]) == 0 and int(tanh[-1]) == round(float(torch.tanh(torch.tensor(127 * 0.05))) * 127)


@pytest.mark.parametrize(("act", "window", "padding", "readout"), [
    ("relu", 5, 2, "last"), ("gelu", 3, 0, "all"), ("sigmoid", 2, 3, "all"), ("tanh", 1, 0, "last"),
    ("hardtanh", 4, 1, "all")])
def test_runner_equals_the_torch_integer_modules(act, window, padding, readout):
    _, q = _models(act, window, padding, readout, cell="lstm" if window == 2 else "gru")
    runner = IntegerRunner(q)
    for T in (window - 2 * padding + 1 if window > 1 else 1, 9):
        x = torch.randn(max(T, 1), 3)
        with torch.no_grad():
            ref = q(x[:, None])[0]
        ref = ref[:, 0] if readout == "all" else ref[0]
        assert torch.equal(runner.run_sequence(x), ref)


def test_activation_without_window_streams_bit_exactly():
    _, q = _models("tanh", 1, 0, "all")
    runner = IntegerRunner(q)
    x = torch.randn(7, 3)
    logits, _ = runner.run_features(x)
    with torch.no_grad():
        assert torch.equal(logits, q(x[:, None])[0][:, 0])


def test_windowed_input_refuses_streaming():
    _, q = _models("relu", 5, 2)
    runner = IntegerRunner(q)
    with pytest.raises(ValueError, match="windows of 5 frames.*run_sequence"):
        runner.run_features(torch.randn(4, 3))
    with pytest.raises(ValueError, match="shorter than the input window"):
        IntegerRunner(_models("relu", 5, 0)[1]).run_sequence(torch.randn(3, 3))


def test_integer_front_end_round_trips_through_the_model_file(tmp_path):
    _, q = _models("gelu", 3, 1)
    path = save_model(q, tmp_path / "m")
    loaded = load_model(path)
    x = torch.randn(8, 2, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], q(x)[0])
    assert isinstance(loaded.input_act, IntegerActivation) and torch.equal(loaded.input_act.table, q.input_act.table)
