"""The unfused reference cells equal torch.nn.LSTM/GRU/RNN (max abs diff <= 1e-5, fp32)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnslim.recurrent.cells import reference_forward

MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}


def _make(kind, input_size, hidden, layers, bidirectional, batch_first, proj, bias=True):
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    if kind == "lstm":
        kwargs["proj_size"] = proj
    if kind == "rnn_relu":
        kwargs["nonlinearity"] = "relu"
    return MODULES[kind](input_size, hidden, **kwargs).eval()


def _initial_state(kind, m, batch):
    D = 2 if m.bidirectional else 1
    P = getattr(m, "proj_size", 0) or m.hidden_size
    h0 = torch.randn(m.num_layers * D, batch, P)
    if kind == "lstm":
        return (h0, torch.randn(m.num_layers * D, batch, m.hidden_size))
    return h0


def _max_diff(a, b):
    if isinstance(a, tuple):
        return max(_max_diff(x, y) for x, y in zip(a, b))
    return (a - b).abs().max().item()


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(MODULES)),
    input_size=st.integers(1, 12),
    hidden=st.integers(2, 16),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    with_state=st.booleans(),
    bias=st.booleans(),
    T=st.integers(1, 7),
    B=st.integers(1, 3),
    proj_frac=st.sampled_from([0.0, 0.5]),
)
def test_reference_equals_torch(kind, input_size, hidden, layers, bidirectional, batch_first, with_state, bias, T, B,
                                proj_frac):
    proj = int(hidden * proj_frac) if kind == "lstm" else 0
    m = _make(kind, input_size, hidden, layers, bidirectional, batch_first, proj, bias)
    x = torch.randn(B, T, input_size) if batch_first else torch.randn(T, B, input_size)
    hx = _initial_state(kind, m, B) if with_state else None
    with torch.no_grad():
        want = m(x, hx)
        got = reference_forward(m, x, hx)
    assert want[0].shape == got[0].shape
    assert _max_diff(want[0], got[0]) <= 1e-5
    assert _max_diff(want[1], got[1]) <= 1e-5


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_reference_large_layer(kind):
    m = _make(kind, 64, 96, 2, True, False, 32 if kind == "lstm" else 0)
    x = torch.randn(20, 2, 64)
    with torch.no_grad():
        assert _max_diff(m(x), reference_forward(m, x)) <= 1e-5
