"""Weight-only quantized layers against torch's own nn.LSTM / nn.GRU / nn.RNN."""

import pytest
import torch
from torch import nn

from rnnslim.quantize.formats import (
    FloatFormat,
    KMeansFormat,
    TernaryFormat,
    int_format,
)
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
from rnnslim.quantize.primitives import sqnr_db

# measured (seed 0, 32 -> 64, T=20, B=4): int8 46-51 dB, int4 g32 21-26, kmeans16 22-27,
# int2 asym mse 8.5-13, ternary 7.9-12.5, bf16 55-59; bounds keep a few dB of margin
BOUNDS = [(int_format(8, None), 40.0), (int_format(4, 32), 17.0), (KMeansFormat(clusters=16), 17.0),
          (int_format(2, 32, symmetric=False, clip="mse"), 5.0), (TernaryFormat(group_size=32), 5.0),
          (FloatFormat(dtype="bf16"), 45.0)]


def _states(s):
    return torch.cat([t.reshape(-1) for t in s]) if isinstance(s, tuple) else s.reshape(-1)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_output_sqnr_bounds(cls, bidirectional, layers):
    torch.manual_seed(0)
    m = cls(32, 64, num_layers=layers, bidirectional=bidirectional).eval()
    x = torch.randn(20, 4, 32)
    y, s = m(x)
    for fmt, bound in BOUNDS:
        q = QuantRecurrent.from_float(m, fmt).eval()
        yq, sq = q(x)
        assert yq.shape == y.shape
        assert sqnr_db(y, yq) > bound, fmt.describe()
        assert sqnr_db(_states(s), _states(sq)) > bound - 3, fmt.describe()


@pytest.mark.parametrize("make", [
    lambda: nn.LSTM(8, 16, proj_size=4, bidirectional=True),
    lambda: nn.GRU(8, 16, batch_first=True),
    lambda: nn.RNN(8, 16, nonlinearity="relu", num_layers=2),
    lambda: nn.LSTM(8, 16, bias=False),
])
def test_state_contract_and_exact_match_with_dequantized_torch_module(make):
    torch.manual_seed(0)
    m = make().eval()
    q = QuantRecurrent.from_float(m, int_format(4, 4)).eval()
    ref = q.to_float().eval()  # a real torch module holding the dequantized weights
    x = torch.randn(4, 6, 8)
    D, L = (2 if m.bidirectional else 1), m.num_layers
    P = getattr(m, "proj_size", 0) or m.hidden_size
    h0 = torch.randn(L * D, 4 if m.batch_first else 6, P)
    state = (h0, torch.randn(L * D, h0.shape[1], m.hidden_size)) if isinstance(m, nn.LSTM) else h0
    for st in (None, state):
        y_ref, s_ref = ref(x, st)
        y, s = q(x, st)
        assert torch.allclose(y, y_ref, atol=1e-6)
        for a, b in zip(_states(s).split(1), _states(s_ref).split(1)):
            assert torch.allclose(a, b, atol=1e-6)
    # unbatched input, like torch
    y1, _ = q(x[0] if m.batch_first else x[:, 0])
    assert y1.dim() == 2


def test_attributes_look_like_torch():
    m = nn.LSTM(8, 16, bidirectional=True)
    q = QuantRecurrent.from_float(m, int_format(8, None))
    assert (q.input_size, q.hidden_size, q.num_layers, q.bidirectional) == (8, 16, 1, True)
    assert q.weight_ih_l0.shape == (64, 8)  # dequantized on access
    assert torch.equal(q.bias_hh_l0_reverse.data, m.bias_hh_l0_reverse.data)
    # codes: 8 bits per weight; scales: one fp16 per gate row of each matrix (64 rows, 8 + 16 columns)
    assert "int8" in repr(q) and q.weight_bits() == pytest.approx(8 + 16 * 64 * 2 / (64 * 24))


def test_dequantized_cache_follows_buffer_changes():
    m = nn.GRU(8, 16)
    q = QuantRecurrent.from_float(m, int_format(4, 8))
    other = QuantRecurrent.from_float(nn.GRU(8, 16), int_format(4, 8))
    x = torch.randn(3, 2, 8)
    y1, _ = q(x)
    q.load_state_dict(other.state_dict())
    y2, _ = q(x)
    assert torch.equal(y2, other(x)[0]) and not torch.equal(y1, y2)
    # casting the model keeps the stored codes and scales as they are
    q.to(torch.bfloat16)
    assert q.qweights["weight_ih_l0"].scale.dtype == torch.float16
    assert torch.equal(q.qweights["weight_ih_l0"].dequantize(), other.qweights["weight_ih_l0"].dequantize())


def test_embedding_and_linear():
    emb, lin = nn.Embedding(30, 64), nn.Linear(64, 10)
    qe, ql = QuantEmbedding.from_float(emb, int_format(8, None)), QuantLinear.from_float(lin, int_format(4, 32))
    ids = torch.randint(0, 30, (7, 3))
    assert sqnr_db(emb(ids), qe(ids)) > 40
    h = torch.randn(5, 64)
    assert sqnr_db(lin(h), ql(h)) > 17
    assert torch.equal(ql.bias.data, lin.bias.data)


def test_clear_errors():
    with pytest.raises(ValueError, match="weight_ih_l0 .* int4 g64.*does not divide"):
        QuantRecurrent.from_float(nn.LSTM(24, 16), int_format(4, 64))
    q = QuantRecurrent.from_float(nn.LSTM(8, 16), int_format(8, None))
    with pytest.raises(ValueError, match="expects 8"):
        q(torch.randn(3, 2, 9))
    with pytest.raises(ValueError, match="max_norm"):
        QuantEmbedding.from_float(nn.Embedding(4, 8, max_norm=1.0), int_format(8, None))
