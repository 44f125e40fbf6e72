"""capture of a CRNN front end: a Conv1d with kernel > 1 over time and an elementwise activation
(ReLU / Tanh / Sigmoid / GELU / Hardtanh, as modules, functions or methods) in front of the
first recurrent module; parity with the user's module and refusals naming the source line."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnslim.capture import CaptureError, capture, user_view
from rnnslim.models.sequence import InputActivation, InputKind

RTOL = 1e-5


class Crnn(nn.Module):
    """x (B, T, C) -> Conv1d over time -> activation -> [Linear] -> GRU / LSTM -> Linear on the last step."""

    def __init__(self, act, kernel: int = 5, padding=2, after: bool = False, bn: bool = False, cell=nn.GRU,
                 bias: bool = True) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3) if bn else None
        self.conv = nn.Conv1d(3, 6, kernel, padding=padding, bias=bias)
        self.act = act
        self.after = nn.Linear(6, 5) if after else None
        self.rnn = cell(5 if after else 6, 7, batch_first=True)
        self.head = nn.Linear(7, 2)

    def forward(self, x):
        h = x.permute(0, 2, 1)  # (B, C, T)
        if self.bn is not None:
            h = self.bn(h)
        h = self.act(self.conv(h)).permute(0, 2, 1)  # (B, T', 6)
        if self.after is not None:
            h = self.after(h)
        out, _ = self.rnn(h)
        return self.head(out[:, -1])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def _check(m: nn.Module, x: torch.Tensor):
    model = capture(m.eval(), (x,))
    assert model.capture_info.parity.max_rel_error <= RTOL
    with torch.no_grad():  # another batch and length than the example
        x2 = torch.randn(3, x.shape[1] + 4, x.shape[2])
        assert _rel(m(x2), user_view(model)(x2)) <= RTOL
    return model.spec


@pytest.mark.parametrize(("act", "kind"), [
    (nn.ReLU(), "relu"), (F.relu, "relu"), (torch.tanh, "tanh"), (nn.Sigmoid(), "sigmoid"),
    (lambda h: h.sigmoid(), "sigmoid"), (nn.GELU(), "gelu"), (F.gelu, "gelu"), (nn.Hardtanh(), "hardtanh"),
    (F.hardtanh, "hardtanh"), (lambda h: F.relu(h, inplace=True), "relu")])
def test_activation_forms_after_a_conv1d(act, kind):
    torch.manual_seed(0)
    spec = _check(Crnn(act), torch.randn(2, 9, 3))
    assert spec.input_kind is InputKind.LINEAR and spec.input_activation is InputActivation(kind)
    assert (spec.input_window, spec.input_padding, spec.input_size, spec.embed_size) == (5, 2, 3, 6)


@pytest.mark.parametrize(("kernel", "padding", "steps"), [(3, 0, 3), (4, "valid", 6), (3, "same", 5), (2, 3, 7)])
def test_kernel_and_padding_change_the_steps(kernel, padding, steps):
    torch.manual_seed(1)
    spec = _check(Crnn(nn.ReLU(), kernel, padding, cell=nn.LSTM), torch.randn(2, steps, 3))
    assert spec.input_window == kernel
    assert spec.input_padding == {"valid": 0, "same": (kernel - 1) // 2}.get(padding, padding)


def test_maps_around_the_window_fold():
    """A bias-free BatchNorm-like scale before the Conv1d folds into every frame; a Linear after the
    activation folds into the first layer's W_ih."""
    torch.manual_seed(2)
    m = Crnn(nn.Tanh(), after=True, bias=False)
    m.bn = None
    spec = _check(m, torch.randn(2, 8, 3))
    assert spec.embed_size == 6 and spec.input_activation is InputActivation.TANH
    names = capture(m.eval(), (torch.randn(2, 8, 3),)).capture_info.tensor_names
    assert names["after.weight"] == "(folded into rnn.layers.0.weight_ih_l0)"
    assert "windows of frames" in names["conv.weight"]


def test_activation_without_a_projection_gets_an_identity_one():
    class ActFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.head = nn.GRU(4, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.head(self.rnn(torch.relu(x))[0])

    torch.manual_seed(3)
    spec = _check(ActFirst(), torch.randn(6, 2, 4))
    assert spec.input_kind is InputKind.LINEAR and spec.input_window == 1 and spec.embed_size == 4


def test_activation_on_an_embedding_is_folded_into_the_table():
    class EmbTanh(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.rnn, self.head = nn.Embedding(11, 4), nn.LSTM(4, 5), nn.Linear(5, 11)

        def forward(self, x):
            return self.head(self.rnn(torch.tanh(self.emb(x)))[0])

    torch.manual_seed(4)
    m = EmbTanh().eval()
    x = torch.randint(0, 11, (6, 2))
    model = capture(m, (x,))
    assert model.spec.input_kind is InputKind.EMBEDDING and model.spec.input_activation is InputActivation.NONE
    with torch.no_grad():
        assert _rel(m(x), user_view(model)(x)) <= RTOL
        assert float(model.embedding.weight.abs().max()) <= 1.0  # tanh of every row


@pytest.mark.parametrize(("conv", "match"), [
    (nn.Conv1d(3, 6, 3, stride=2), "stride 1, dilation 1, groups 1"),
    (nn.Conv1d(3, 6, 3, dilation=2), "stride 1, dilation 1, groups 1"),
    (nn.Conv1d(3, 6, 3, groups=3), "stride 1, dilation 1, groups 1"),
    (nn.Conv1d(3, 6, 3, padding=1, padding_mode="reflect"), "zero padding"),
])
def test_unsupported_convolutions_are_refused(conv, match):
    m = Crnn(nn.ReLU())
    m.conv = conv
    with pytest.raises(CaptureError, match=match + r".*test_front_end\.py:\d+"):
        capture(m.eval(), (torch.randn(2, 9, 3),))


@pytest.mark.parametrize(("act", "match"), [
    (nn.GELU(approximate="tanh"), "exact GELU"), (lambda h: F.gelu(h, approximate="tanh"), "exact GELU"),
    (nn.Hardtanh(-2.0, 2.0), r"Hardtanh over \[-1, 1\]"), (lambda h: F.hardtanh(h, 0.0, 1.0), r"hardtanh over"),
])
def test_unsupported_activation_variants_are_refused(act, match):
    with pytest.raises(CaptureError, match=match):
        capture(Crnn(act).eval(), (torch.randn(2, 9, 3),))


class _ChannelsFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.rnn = nn.Conv1d(5, 4, 3, padding=1), nn.GRU(4, 4, batch_first=True)

    def forward(self, x):  # x (B, C, T): the data already in Conv1d's layout
        return self.rnn(F.relu(self.conv(x)).permute(0, 2, 1))[0]


def test_channels_first_input_binds_its_axes_at_the_conv():
    torch.manual_seed(5)
    m = _ChannelsFirst().eval()
    x = torch.randn(2, 5, 7)
    model = capture(m, (x,))
    assert model.capture_info.input_axes == ["B", "F", "T"] and model.spec.input_window == 3
    with torch.no_grad():
        assert _rel(m(x), user_view(model)(x)) <= RTOL


class _TwoActivations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin, self.rnn = nn.Linear(3, 4), nn.GRU(4, 4)

    def forward(self, x):
        return self.rnn(torch.tanh(torch.relu(self.lin(x))))[0]


class _ConvAfterRnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.conv = nn.GRU(3, 4, batch_first=True), nn.Conv1d(4, 2, 3)

    def forward(self, x):
        return self.conv(self.rnn(x)[0].transpose(1, 2))


def test_misplaced_front_ends_are_refused():
    with pytest.raises(CaptureError, match=r"two activations.*test_front_end\.py:\d+"):
        capture(_TwoActivations().eval(), (torch.randn(5, 2, 3),))
    with pytest.raises(CaptureError, match=r"kernel > 1 after a recurrent module.*test_front_end\.py:\d+"):
        capture(_ConvAfterRnn().eval(), (torch.randn(2, 6, 3),))
