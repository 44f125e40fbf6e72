"""MACs per step against hand counts for LSTM / GRU, bidirectional layers and projections."""

import pytest
import torch
from torch import nn

from rnnslim.measure.macs import macs_per_step, module_macs, recurrent_layer_macs
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.recurrent.stack import LayerSpec


def test_lstm_hand_count():
    # one direction: 4 gates x H x (I + H)
    assert recurrent_layer_macs("lstm", 10, LayerSpec(20)) == 4 * 20 * 10 + 4 * 20 * 20


def test_gru_bidirectional_hand_count():
    assert recurrent_layer_macs("gru", 10, LayerSpec(20, bidirectional=True)) == 2 * (3 * 20 * 10 + 3 * 20 * 20)


def test_lstm_projection_hand_count():
    # input 4H*I, recurrent 4H*P (h has P features), projection P*H
    assert recurrent_layer_macs("lstm", 10, LayerSpec(20, proj_size=6)) == 4 * 20 * 10 + 4 * 20 * 6 + 6 * 20


@pytest.mark.parametrize("cls,kw", [(nn.LSTM, {}), (nn.GRU, {}), (nn.LSTM, {"bidirectional": True}),
                                    (nn.LSTM, {"proj_size": 5}), (nn.GRU, {"bidirectional": True}),
                                    (nn.RNN, {})])
def test_torch_module_equals_its_weight_count(cls, kw):
    m = cls(7, 12, num_layers=3, **kw)
    parts = module_macs("rnn", m)
    weights = sum(p.numel() for n, p in m.named_parameters() if n.startswith("weight"))
    assert sum(p.dense for p in parts) == weights == sum(p.nonzero for p in parts)
    assert len(parts) == 3


def test_sequence_model_parts_and_nonzeros():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=30, embed_size=8,
                     layers=[LayerShape(hidden_size=16, bidirectional=True), LayerShape(hidden_size=12, proj_size=4)],
                     output_size=30)
    m = SequenceModel(spec)
    stats = macs_per_step(m)
    l0 = 2 * (4 * 16 * 8 + 4 * 16 * 16)
    l1 = 4 * 12 * 32 + 4 * 12 * 4 + 4 * 12
    head = 30 * 4
    assert [p.dense for p in stats.parts] == [0, l0, l1, head]  # the embedding lookup is free
    assert stats.dense == l0 + l1 + head
    with torch.no_grad():
        m.rnn.layers[1].weight_hh_l0.zero_()
    assert macs_per_step(m).nonzero == stats.dense - 4 * 12 * 4


def test_linear_input_projection_counts():
    spec = ModelSpec(cell="gru", input_kind=InputKind.LINEAR, input_size=5, embed_size=8,
                     layers=[LayerShape(hidden_size=16)], output_size=3, readout="last")
    stats = macs_per_step(SequenceModel(spec))
    assert stats.parts[0].dense == 5 * 8
    assert stats.dense == 5 * 8 + 3 * 16 * (8 + 16) + 3 * 16


class Declared(nn.Module):
    def macs_per_step(self):
        return 100, 40


class Factorized(nn.Module):
    """A low-rank layer stand-in: two stored matrices, no declaration."""

    def __init__(self) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.ones(6, 2))
        self.v = nn.Parameter(torch.zeros(2, 5))


def test_swapped_in_layers():
    (part,) = module_macs("x", Declared())
    assert (part.dense, part.nonzero, part.estimated) == (100, 40, False)
    (part,) = module_macs("y", Factorized())
    assert (part.dense, part.nonzero, part.estimated) == (12 + 10, 12, True)


def test_user_module_counts_rnn_and_linear():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(4, 8)
            self.head = nn.Linear(8, 2)

    stats = macs_per_step(Net())
    assert stats.dense == 3 * 8 * (4 + 8) + 16
