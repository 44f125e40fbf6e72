"""ExportedModel.step: the input first, the state second (optional), C's order refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compilers import needs_cc

from rnnslim.export.c_source import export_c
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.runtime import ExportedModel


FAST = ("-O1",)  # compile time dominates these tests; the arithmetic is the same at any level


def _tiny_int8(kind: str = "embedding", vocab: int = 11, features: int = 3):
    torch.manual_seed(0)
    spec = ModelSpec(cell="gru", input_kind=InputKind(kind), input_size=vocab if kind == "embedding" else features,
                     embed_size=6, layers=[LayerShape(hidden_size=8)], output_size=vocab if kind == "embedding" else 2)
    model = SequenceModel(spec).eval()
    calib = ([torch.randint(0, vocab, (12, 2))] if kind == "embedding" else [torch.randn(12, 2, features)])
    return quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("step")
    export_c(_tiny_int8(), d / "c", name="tiny")
    return d


@needs_cc
def test_step_without_a_state_streams_the_models_own_state(lm, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(lm / "cache"))
    m = ExportedModel(lm / "c", flags=FAST)
    tokens = [3, 1, 4, 1, 5, 9]
    state = m.new_state()
    explicit = [m.step(t, state).copy() for t in tokens]
    own = [m.step(t).copy() for t in tokens]
    assert all(np.array_equal(a, b) for a, b in zip(explicit, own))
    assert not np.array_equal(own[0], own[-1])  # the state moved on
    m.reset()
    assert np.array_equal(m.step(tokens[0]), explicit[0])  # reset() starts the own stream again
    assert np.array_equal(m.step_int(tokens[1]), m.step_int(tokens[1], _after(m, tokens[:1])))


def _after(m: ExportedModel, tokens: list[int]) -> np.ndarray:
    s = m.new_state()
    for t in tokens:
        m.step(t, s)
    return s


@needs_cc
def test_the_c_argument_order_is_a_type_error_naming_the_order(lm, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(lm / "cache"))
    m = ExportedModel(lm / "c", flags=FAST)
    state = m.new_state()
    for call in (lambda: m.step(state, 5), lambda: m.step_int(state, 5), lambda: m.step(state)):
        with pytest.raises(TypeError, match=r"the token comes first, then the state .*tiny_step\(&state, token"):
            call()
    assert not state.any()  # nothing ran
    with pytest.raises(TypeError, match="got step\\(int, int\\)"):
        m.step(5, 3)


@needs_cc
def test_a_feature_model_names_features_in_the_order_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    export_c(_tiny_int8("linear"), tmp_path / "c", name="kws")
    m = ExportedModel(tmp_path / "c", flags=FAST)
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="the features come first, then the state"):
        m.step(m.new_state(), x)
    assert m.step(x).shape == (2,)
