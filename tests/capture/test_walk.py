"""The operations the graph walk accepts (folded or skipped exactly) and refuses, one small
module each; every accepted one is checked numerically through user_view."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnslim.capture import CaptureError, capture, user_view
from rnnslim.models.sequence import InputKind, OutputActivation, Readout
from rnnslim.recurrent.gates import CellType
from rnnslim.recurrent.torch_contract import TorchContractStack


def _same(m: nn.Module, *inputs, rtol: float = 1e-5):
    model = capture(m.eval(), inputs)
    with torch.no_grad():
        a, b = m(*inputs), user_view(model)(*inputs)
    a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
    assert a.shape == b.shape
    assert float((a - b).abs().max() / a.abs().max()) <= rtol
    return model


class ConvOneFront(nn.Module):  # channels first (B, C, T): kernel-1 Conv1d = Linear over channels
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 6, 1)
        self.rnn = nn.RNN(6, 7, batch_first=True)
        self.out = nn.Linear(7, 2)

    def forward(self, x):
        return self.out(self.rnn(self.conv(x).transpose(1, 2))[0][:, -1])


class SqueezedState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.lin = nn.Linear(4, 5, bias=False)
        self.rnn = nn.GRU(5, 6, bias=False)
        self.out = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 3), nn.LogSoftmax(dim=-1))

    def forward(self, x):  # time major (T, B, F)
        b, t, f = x.shape[1], x.shape[0], x.shape[2]
        y = self.lin(self.bn(x.reshape(t * b, f)).reshape(t, b, f))
        _, h = self.rnn(y, torch.zeros(1, b, 6))
        return self.out(h.squeeze(0))


class Scalars(nn.Module):  # (B, T) scalar series -> unsqueeze(-1) -> LSTM(1, H); forecasting
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(1, 5, batch_first=True)
        self.out = nn.Linear(5, 1)

    def forward(self, x):
        return self.out(self.rnn(x.unsqueeze(-1))[0][:, -1]).squeeze(-1)


class Pruned(nn.Module):  # rnnslim's stack of unequal layers in place of the user's nn.LSTM
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.rnn = TorchContractStack(CellType.LSTM, 8, 12, 2)
        self.rnn.layers[0], self.rnn.layers[1] = nn.LSTM(8, 9), nn.LSTM(9, 5)
        self.out = nn.Linear(5, 20)

    def forward(self, x, hidden=None):
        y, hidden = self.rnn(self.emb(x), hidden)
        return self.out(y), hidden


def test_kernel1_conv_channels_first():
    torch.manual_seed(0)
    model = _same(ConvOneFront(), torch.randn(3, 3, 9))
    assert model.spec.input_kind is InputKind.LINEAR and model.spec.cell is CellType.RNN_TANH
    assert model.capture_info.input_axes == ["B", "F", "T"]


def _random_statistics(bn: torch.nn.BatchNorm1d) -> None:
    """Running statistics away from (0, 1), so a fold that ignored them would show."""
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)


def test_batchnorm_linear_folded_reshapes_zero_state_and_squeezed_h():
    torch.manual_seed(1)
    m = SqueezedState()
    _random_statistics(m.bn)
    model = _same(m, torch.randn(7, 3, 4))
    spec = model.spec
    assert spec.input_kind is InputKind.LINEAR and spec.readout is Readout.LAST
    assert spec.output_activation is OutputActivation.LOG_SOFTMAX and spec.output_size == 3
    assert model.capture_info.tensor_names["bn.running_mean"] == "(folded into input_proj)"
    assert model.capture_info.tensor_names["out.0.weight"] == "(folded into decoder)"


def test_scalar_series_unsqueezed_into_one_feature():
    torch.manual_seed(2)
    model = _same(Scalars(), torch.randn(4, 10))
    assert model.spec.input_size == 1 and model.capture_info.input_axes == ["B", "T"]
    assert model.capture_info.output_axes == [["B"]]


def test_rnnslim_pruned_stack_of_unequal_layers():
    torch.manual_seed(3)
    m = Pruned().eval()
    x = torch.randint(0, 20, (6, 2))
    model = _same(m, x, None)
    assert [s.hidden_size for s in model.spec.layers] == [9, 5]
    assert model.capture_info.module_kinds == ["per_layer"]
    assert model.capture_info.tensor_names["rnn.layers.1.weight_hh_l0"] == "rnn.layers.1.weight_hh_l0"
    state = [(torch.randn(1, 2, 9), torch.randn(1, 2, 9)), (torch.randn(1, 2, 5), torch.randn(1, 2, 5))]
    with torch.no_grad():
        (a, ha), (b, hb) = m(x, state), user_view(model)(x, state)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(ha[1][1], hb[1][1], atol=1e-6)


class _Refused(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rnn = nn.LSTM(4, 4, batch_first=True)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        y, (h, c) = self.rnn(x)
        if self.how == "layernorm":
            return self.out(self.norm(y))
        if self.how == "relu head":
            return self.out(torch.relu(y))
        if self.how == "two outputs":
            return self.out(y), self.out(y[:, -1])
        if self.how == "first step":
            return self.out(y[:, 0])
        if self.how == "features slice":
            return self.out(y[..., :2].repeat(1, 1, 2))
        if self.how == "matmul":
            return self.out(y @ y.transpose(1, 2) @ y)
        raise AssertionError(self.how)


@pytest.mark.parametrize("how, message", [
    ("layernorm", r"LayerNorm.*no fixed affine map.*test_walk\.py:\d+ \(return self\.out\(self\.norm\(y\)\)\)"),
    ("relu head", r"relu.*not supported.*test_walk\.py:\d+"),
    ("two outputs", r"2 data outputs"),
    ("first step", r"last time step.*test_walk\.py:\d+"),
    ("features slice", r"indexing the data.*test_walk\.py:\d+"),
    ("matmul", r"matmul.*test_walk\.py:\d+"),
])
def test_refusals_name_the_operation_and_the_line(how, message):
    with pytest.raises(CaptureError, match=message):
        capture(_Refused(how), (torch.randn(2, 5, 4),))


class ScaledEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(15, 6)
        self.rnn = nn.GRU(6, 6, batch_first=True)
        self.out = nn.Linear(6, 15)

    def forward(self, x):
        y, _ = self.rnn(self.emb(x) * 2.5)
        return self.out(y / 4)


def test_constant_scales_are_folded():
    torch.manual_seed(5)
    model = _same(ScaledEmbedding(), torch.randint(0, 15, (3, 7)))
    assert model.spec.tie_weights is False and model.spec.input_kind is InputKind.EMBEDDING


class _SliceInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)

    def forward(self, x):
        return self.rnn(x[:, :, :3])[0]


def test_slicing_the_input_and_size_one_examples_are_refused():
    with pytest.raises(CaptureError, match=r"indexing the data.*test_walk\.py:\d+"):
        capture(_SliceInput(), (torch.randn(2, 5, 6),))
    from tests.capture.user_modules import ExamplesWordLM

    m = ExamplesWordLM("GRU").eval()
    with pytest.raises(CaptureError, match=r"batch and time > 1.*user_modules\.py:\d+"):
        capture(m, (torch.randint(0, 30, (6, 1)), m.init_hidden(1)))
    model = capture(m, (torch.randint(0, 30, (6, 2)), m.init_hidden(2)))
    with torch.no_grad():  # captured from batch 2, called with batch 1
        x = torch.randint(0, 30, (6, 1))
        assert torch.allclose(user_view(model)(x, m.init_hidden(1))[0], m(x, m.init_hidden(1))[0], atol=1e-5)


class _MeanOfLogSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):  # time major; out[-1] would be fine, the mean of log-probabilities is not
        return self.out(self.rnn(x)[0]).log_softmax(-1).mean(0)


def test_misplaced_readout_is_refused_with_its_line():
    with pytest.raises(CaptureError, match=r"mean over time of a \(log_\)softmax.*test_walk\.py:\d+"):
        capture(_MeanOfLogSoftmax(), (torch.randn(5, 2, 3),))


class _NormedHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 5, batch_first=True)
        self.bn = nn.BatchNorm1d(5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.bn(self.rnn(x)[0][:, -1]))


def test_batchnorm_after_the_readout_folds_into_the_decoder():
    torch.manual_seed(6)
    m = _NormedHead()
    _random_statistics(m.bn)
    model = _same(m, torch.randn(4, 6, 3))
    assert model.capture_info.tensor_names["bn.weight"] == "(folded into decoder)"


class _Casts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 4)
        self.out = nn.Linear(4, 10)

    def forward(self, x):
        y = self.rnn(self.emb(x.long()).to(x.device))[0]
        return self.out(y.contiguous().detach())


def test_casts_and_device_moves_are_no_ops():
    torch.manual_seed(7)
    _same(_Casts(), torch.randint(0, 10, (5, 2), dtype=torch.int32))
