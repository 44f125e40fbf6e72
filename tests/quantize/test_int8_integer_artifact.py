"""The fully integer model's file holds each fact once (issue 25: its artifact was larger than
int8 dynamic's): the lookup tables and the per-row multipliers are derived, not stored, the
loaded model is bit-identical, and files that still hold them load when they agree."""

from __future__ import annotations

import copy

import pytest
import torch
from int8_models import float_model_64_40, integer_copy, random_inputs

from rnnslim.io.format import ModelFormatError, load_model, save_model
from rnnslim.models.sequence import InputKind, Readout
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_


def _files_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def test_integer_artifact_is_not_larger_than_dynamic_and_round_trips(tmp_path):
    model = float_model_64_40("lstm", input_kind=InputKind.LINEAR, readout=Readout.LAST)
    x = random_inputs(model, 30, 4, 1)
    integer = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=[x])
    dynamic = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.DYNAMIC))
    save_model(integer, tmp_path / "integer")
    save_model(dynamic, tmp_path / "dynamic")
    assert _files_bytes(tmp_path / "integer") <= _files_bytes(tmp_path / "dynamic")
    back = load_model(tmp_path / "integer")
    for a, b in zip(integer.rnn.layers, back.rnn.layers):
        for n, t in a.derived_buffers().items():
            assert torch.equal(t, getattr(b, n)), n
    assert torch.equal(integer(x)[0], back(x)[0])


def _older_file(model, path):
    """Save as rnnslim did before the derived buffers: every buffer persistent."""
    old = copy.deepcopy(model)
    for layer in old.rnn.layers:
        layer._non_persistent_buffers_set.clear()
    save_model(old, path)
    return old


def test_an_older_file_with_the_tables_loads_and_a_tampered_one_is_refused(tmp_path):
    q = integer_copy(float_model_64_40("gru"))
    _older_file(q, tmp_path / "old")
    x = random_inputs(q, 12, 2, 3)
    assert torch.equal(load_model(tmp_path / "old")(x)[0], q(x)[0])
    bad = copy.deepcopy(q)
    bad.rnn.layers[0].mult_hh[3] += 1  # a multiplier that disagrees with the stored scales
    _older_file(bad, tmp_path / "bad")
    with pytest.raises(ModelFormatError, match=r"rnn.layers.0.mult_hh differs from the value the model derives"):
        load_model(tmp_path / "bad")
