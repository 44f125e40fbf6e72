"""capture() of user module shapes: parity with the user's module, the spec it builds, refusals
that name the operation and the user's source line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnslim.capture import CaptureError, capture, user_view
from rnnslim.models.sequence import InputKind, OutputActivation, Readout
from tests.capture.user_modules import (
    ConvFrontGRU, ExamplesWordLM, KeywordGRU, ProjectedLSTM, ResidualLSTM, SelfInitLM, SensorLSTM, TwoLSTMs,
)
from tests.user_models import Tagger, WordLM

RTOL = 1e-5


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def _trained_bn(m: SensorLSTM) -> SensorLSTM:
    """Running statistics away from (0, 1), so that folding them matters."""
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    return m


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
@pytest.mark.parametrize("tie", [False, True])
def test_examples_word_lm(rnn_type, tie):
    torch.manual_seed(0)
    m = ExamplesWordLM(rnn_type, tie_weights=tie).train()  # capture switches to eval and back
    x = torch.randint(0, 30, (7, 3))
    model = capture(m, (x, m.init_hidden(3)))
    assert m.training  # the user's module is left as it was
    spec = model.spec
    assert spec.input_kind is InputKind.EMBEDDING and spec.readout is Readout.ALL and spec.tie_weights is tie
    assert spec.output_activation is OutputActivation.LOG_SOFTMAX and len(spec.layers) == 2
    info = model.capture_info
    assert info.layout == "time_major" and info.output_axes == [["T", "B"], ["F"]]
    assert info.arguments == ["data", "state:0"] and info.returns == ["out", "state:0"]
    assert info.parity.max_rel_error <= RTOL
    assert info.tensor_names["rnn.weight_hh_l1"] == "rnn.layers.1.weight_hh_l0"
    m.eval()
    hidden = tuple(torch.randn_like(h) for h in m.init_hidden(3)) if rnn_type == "LSTM" else torch.randn(2, 3, 12)
    with torch.no_grad():  # a carried (non-zero) state goes through as well
        ref_out, ref_h = m(x, hidden)
        out, h = user_view(model)(x, hidden)
    assert out.shape == ref_out.shape == (21, 30) and _rel(ref_out, out) <= RTOL
    for a, b in zip(ref_h if rnn_type == "LSTM" else [ref_h], h if rnn_type == "LSTM" else [h]):
        assert _rel(a, b) <= RTOL


def test_hidden_none_becomes_a_state_argument():
    m = WordLM().eval()
    x = torch.randint(0, 50, (6, 2))
    model = capture(m, (x, None))
    assert model.capture_info.arguments == ["data", "state:0"]
    hidden = (torch.randn(2, 2, 32), torch.randn(2, 2, 32))
    with torch.no_grad():
        assert _rel(m(x, hidden)[0], user_view(model)(x, hidden)[0]) <= RTOL
        assert _rel(m(x)[0], user_view(model)(x)[0]) <= RTOL


def test_zero_state_built_inside_forward():
    torch.manual_seed(5)
    m = SelfInitLM().eval()
    x = torch.randint(0, 20, (3, 7))
    model = capture(m, (x,))
    assert model.capture_info.arguments == ["data", "state:0"] and model.capture_info.layout == "batch_first"
    hidden = (torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    with torch.no_grad():
        assert _rel(m(x)[0], user_view(model)(x)[0]) <= RTOL
        assert _rel(m(x, hidden)[0], user_view(model)(x, hidden)[0]) <= RTOL


def test_keyword_gru_last_step_batch_first():
    torch.manual_seed(1)
    m = KeywordGRU().eval()
    x = torch.randn(4, 9, 13)
    model = capture(m, (x,))
    assert model.spec.readout is Readout.LAST and model.spec.input_kind is InputKind.IDENTITY
    assert model.capture_info.layout == "batch_first"
    with torch.no_grad():
        y = user_view(model)(torch.randn(2, 5, 13))  # other batch and length
        assert y.shape == (2, 5)
        x2 = torch.randn(3, 11, 13)
        assert _rel(m(x2), user_view(model)(x2)) <= RTOL


def test_sensor_lstm_batchnorm_is_folded_into_w_ih():
    torch.manual_seed(2)
    m = _trained_bn(SensorLSTM()).eval()
    x = torch.randn(4, 8, 6)
    model = capture(m, (x,))
    assert model.spec.input_kind is InputKind.IDENTITY and model.spec.readout is Readout.LAST
    assert model.capture_info.tensor_names["bn.running_var"] == "(folded into rnn.layers.0.weight_ih_l0)"
    with torch.no_grad():
        assert _rel(m(x), user_view(model)(x)) <= RTOL


def test_chained_lstms_of_different_sizes_and_mean_readout():
    torch.manual_seed(3)
    m = TwoLSTMs().eval()
    x = torch.randn(9, 4, 5)
    model = capture(m, (x,))
    assert [(s.hidden_size, s.bidirectional) for s in model.spec.layers] == [(12, False), (6, True)]
    assert model.spec.readout is Readout.MEAN and model.spec.input_kind is InputKind.LINEAR
    assert model.capture_info.modules == [(0, 1), (1, 2)]
    with torch.no_grad():
        assert _rel(m(x), user_view(model)(x)) <= RTOL


def test_bidirectional_tagger_and_lstmp():
    torch.manual_seed(4)
    tagger = Tagger().eval()
    ids = torch.randint(0, 40, (3, 10))
    model = capture(tagger, (ids,))
    assert all(s.bidirectional for s in model.spec.layers) and model.capture_info.layout == "batch_first"
    with torch.no_grad():
        assert _rel(tagger(ids), user_view(model)(ids)) <= RTOL
    lstmp = ProjectedLSTM().eval()
    x = torch.randn(2, 6, 4)
    model = capture(lstmp, (x,))
    assert [s.proj_size for s in model.spec.layers] == [6, 6]
    assert model.spec.output_activation is OutputActivation.SOFTMAX
    with torch.no_grad():
        assert _rel(lstmp(x), user_view(model)(x)) <= RTOL


def test_residual_add_is_refused_with_its_source_line():
    with pytest.raises(CaptureError, match=r"\+ \(residual / add\).*user_modules\.py:\d+ \(return self\.out\(y \+ x\)\)"):
        capture(ResidualLSTM(), (torch.randn(2, 5, 8),))


def test_crnn_front_end_becomes_a_windowed_input_projection():
    torch.manual_seed(3)
    m = ConvFrontGRU().eval()
    x = torch.randn(2, 9, 3)
    model = capture(m, (x,))
    spec = model.spec
    assert (spec.input_kind, spec.input_window, spec.input_padding, spec.embed_size) == (InputKind.LINEAR, 5, 2, 8)
    with torch.no_grad():
        assert _rel(m(x), user_view(model)(x)) <= RTOL


class _GeluBetween(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.GRU(3, 4), nn.GRU(4, 4)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)[0]))[0]


class _ValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.rnn(x)[0]
        return self.rnn(-x)[0]


def test_other_operations_and_control_flow_are_refused():
    with pytest.raises(CaptureError, match=r"gelu.*test_api\.py:\d+"):
        capture(_GeluBetween(), (torch.randn(5, 2, 3),))
    with pytest.raises(CaptureError, match=r"cannot be traced.*test_api\.py:\d+ \(if x\.sum\(\) > 0:\)"):
        capture(_ValueBranch(), (torch.randn(5, 2, 3),))


def test_nonzero_example_state_is_refused():
    m = WordLM().eval()
    x = torch.randint(0, 50, (6, 2))
    with pytest.raises(CaptureError, match="non-zero initial state"):
        capture(m, (x, (torch.ones(2, 2, 32), torch.zeros(2, 2, 32))))
