"""models/window.py and SequenceModel's windowed input projection + input activation: the same
numbers as torch's Conv1d, specs that store the new fields only when used."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnslim.models.sequence import InputActivation, ModelSpec, SequenceModel, apply_input_activation
from rnnslim.models.window import conv1d_as_linear_weight, unfold_windows, window_count


@pytest.mark.parametrize(("k", "p", "T"), [(5, 2, 9), (3, 0, 4), (2, 1, 3), (1, 0, 5), (3, 4, 2)])
def test_unfolded_linear_equals_conv1d(k, p, T):
    torch.manual_seed(0)
    conv = nn.Conv1d(3, 4, k, padding=p)
    x = torch.randn(T, 2, 3)  # (T, B, F)
    windows = unfold_windows(x, k, p)  # (T', B, k*F)
    assert windows.shape == (window_count(T, k, p), 2, k * 3)
    y = F.linear(windows, conv1d_as_linear_weight(conv.weight), conv.bias)
    ref = conv(x.permute(1, 2, 0)).permute(2, 0, 1)  # (T', B, E)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)


def test_too_short_sequences_are_refused():
    with pytest.raises(ValueError, match="shorter than the input window"):
        unfold_windows(torch.randn(2, 1, 3), 5, 1)


def _spec(**kw) -> ModelSpec:
    base = dict(cell="gru", input_kind="linear", input_size=3, embed_size=4, layers=[{"hidden_size": 5}],
                output_size=2, readout="last")
    return ModelSpec(**(base | kw))


@pytest.mark.parametrize("act", [a for a in InputActivation if a is not InputActivation.NONE])
def test_encode_is_conv1d_then_the_activation(act):
    torch.manual_seed(1)
    model = SequenceModel(_spec(input_window=3, input_padding=1, input_activation=act)).eval()
    conv = nn.Conv1d(3, 4, 3, padding=1)
    with torch.no_grad():
        model.input_proj.weight.copy_(conv1d_as_linear_weight(conv.weight))
        model.input_proj.bias.copy_(conv.bias)
    x = torch.randn(6, 2, 3)
    ref = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu,
           "hardtanh": F.hardtanh}[act.value](conv(x.permute(1, 2, 0))).permute(2, 0, 1)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), ref, rtol=1e-6, atol=1e-6)
        assert torch.equal(apply_input_activation(model.project(x), act), model.encode(x))
        assert model(x)[0].shape == (2, 2)


def test_defaults_stay_out_of_the_stored_spec():
    plain = _spec().model_dump(mode="json")
    assert not {"input_window", "input_padding", "input_activation"} & set(plain)
    windowed = _spec(input_window=5, input_padding=2, input_activation="relu")
    stored = windowed.model_dump(mode="json")
    assert (stored["input_window"], stored["input_padding"], stored["input_activation"]) == (5, 2, "relu")
    assert ModelSpec.model_validate(stored) == windowed
    assert SequenceModel(windowed).input_proj.weight.shape == (4, 15)


@pytest.mark.parametrize("kw", [{"input_window": 3}, {"input_activation": "relu"}, {"input_padding": 1}])
def test_front_end_needs_a_linear_input(kw):
    with pytest.raises(ValueError, match="need input_kind 'linear'"):
        _spec(input_kind="identity", embed_size=3, **kw)
