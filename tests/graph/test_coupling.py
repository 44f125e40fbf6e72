"""Coupling discovery in models the user wrote: torch.fx, the traced fallback, declarations."""

import pytest
import torch
from torch import nn

from rnnslim.graph import ConsumerKind, CouplingError, build_groups, discover_coupling
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


class CnnBiLstm(nn.Module):
    """(B, T, F) -> Conv1d -> ReLU -> 2-layer BiLSTM -> last step -> Linear."""

    def __init__(self, feats=3, channels=8, hidden=6, classes=4):
        super().__init__()
        self.conv = nn.Conv1d(feats, channels, 3, padding=1)
        self.lstm = nn.LSTM(channels, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, T, C)
        out, _ = self.lstm(y)  # (B, T, 2H)
        return self.fc(out[:, -1])


class FinalState(nn.Module):
    """Classifier on h_n of both directions of the last layer, GRU -> GRU chain."""

    def __init__(self):
        super().__init__()
        self.gru1 = nn.GRU(5, 7)
        self.gru2 = nn.GRU(7, 4, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 3))

    def forward(self, x):
        a, _ = self.gru1(x)
        _, h = self.gru2(torch.tanh(a))
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        w = torch.softmax(torch.bmm(out, out.transpose(1, 2)), -1)
        return self.fc(torch.bmm(w, out)[:, -1])


class Untraceable(CnnBiLstm):
    def forward(self, x):
        if x.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace this
            x = x * 0
        return super().forward(x)


def test_cnn_bilstm_linear_is_found_and_printed():
    m = CnnBiLstm()
    g = discover_coupling(m)
    assert list(g.recurrent) == ["lstm"] and not g.unresolved and not g.exposed
    fc = g.consumers["fc"]
    assert fc.kind is ConsumerKind.LINEAR
    assert fc.feats == tuple(("lstm[1]", k) for k in range(6)) * 2  # [forward units, reverse units]
    text = str(g)
    assert "lstm[1] (6 hidden units) -> fc (linear, 12 inputs)" in text
    assert "lstm[0] (6 hidden units) -> lstm[1].weight_ih" in text


def test_traced_fallback_agrees_with_fx():
    m = CnnBiLstm()
    x = torch.randn(2, 5, 3)
    fx_graph = discover_coupling(m, (x,))
    traced = discover_coupling(m, (x,), method="trace")
    assert traced.method == "trace" and traced.consumers == fx_graph.consumers


def test_untraceable_forward_needs_example_inputs():
    m = Untraceable()
    with pytest.raises(CouplingError, match="example_inputs"):
        discover_coupling(m)
    g = discover_coupling(m, (torch.randn(2, 5, 3),))
    assert g.method == "trace"
    assert g.consumers["fc"].feats == tuple(("lstm[1]", k) for k in range(6)) * 2


@pytest.mark.parametrize("method", ["fx", "trace"])
def test_final_state_and_chained_recurrent_consumers(method):
    m = FinalState()
    g = discover_coupling(m, (torch.randn(5, 2, 5),), method=method)
    assert g.consumers["gru2"].kind is ConsumerKind.RECURRENT
    assert g.consumers["gru2"].feats == tuple(("gru1", k) for k in range(7))
    assert g.consumers["head.1"].feats == tuple(("gru2", k) for k in range(4)) * 2


def test_attention_is_an_undeterminable_coupling_with_a_clear_error():
    m = Attention()
    with pytest.raises(CouplingError) as e:
        discover_coupling(m)
    msg = str(e.value)
    assert "'lstm'" in msg and "bmm" in msg and "consumers={'lstm': ['fc']}" in msg
    # declaring it by hand resolves it (the user vouches that fc reads the units in order)
    g = discover_coupling(m, consumers={"lstm": ["fc"]})
    assert g.consumers["fc"].feats == tuple(("lstm", k) for k in range(6))


@pytest.mark.parametrize("forward,pattern", [
    (lambda s, out: s.fc(out[..., :6]), "constants"),
    (lambda s, out: s.fc(out.flatten(1)), "flatten"),
    (lambda s, out: s.fc(s.norm(out)[:, -1]), "LayerNorm"),
    (lambda s, out: s.fc(out.sum(-1, keepdim=True).expand(-1, -1, 6)[:, -1]), "reduces over the features"),
])
def test_feature_mixing_ops_are_reported(forward, pattern):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.norm = nn.LayerNorm(6)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return forward(self, out)

    g = discover_coupling(M(), strict=False)
    assert "lstm" in g.unresolved and pattern in " ".join(g.unresolved["lstm"])
    groups = {grp.name: grp for grp in build_groups(M(), g)}
    assert groups["lstm"].blocked and "unresolved" in groups["lstm"].blocked


def test_output_features_returned_directly_are_exposed():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(3, 5, num_layers=2)

        def forward(self, x):
            return self.gru(x)[0]

    g = discover_coupling(Encoder())
    assert "gru[1]" in g.exposed and "gru[0]" not in g.exposed
    blocked = {grp.name: grp.blocked for grp in build_groups(Encoder(), g)}
    assert blocked["gru[1]"] and blocked["gru[0]"] is None


def test_sequence_model_groups_and_tied_decoder():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=11, embed_size=6,
                     layers=[LayerShape(hidden_size=9), LayerShape(hidden_size=6)], output_size=11, tie_weights=True)
    m = SequenceModel(spec)
    groups = {g.name: g for g in build_groups(m, discover_coupling(m))}
    first = str(groups["rnn.layers.0"])
    assert "rnn.layers.0.weight_ih_l0" in first and "gate rows (4 gates)" in first
    assert "rnn.layers.1.weight_ih_l0" in first and "cols [0:9)=k" in first
    assert groups["rnn.layers.0"].blocked is None
    # decoder.weight is embedding.weight: the last layer's units and the embedding width are one group
    assert groups["rnn.layers.1"].blocked is None and "tied" in groups["embedding"].blocked
    assert "rnn.layers.0.weight_ih_l0" in str(groups["rnn.layers.1"])  # the first layer's input columns


def test_initial_state_with_constant_size_is_noted():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            h0 = torch.zeros(1, x.size(0), 6)
            out, _ = self.lstm(x, (h0, h0))
            return self.fc(out[:, -1])

    g = discover_coupling(M())
    assert any("constant size" in n for n in g.notes)


def test_packed_sequences_are_followed_by_the_traced_fallback():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(12, 3)

        def forward(self, x, lengths):
            out, _ = self.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return self.fc(pad_packed_sequence(out, batch_first=True)[0].mean(1))

    g = discover_coupling(Packed(), (torch.randn(3, 5, 4), torch.tensor([5, 3, 2])))
    assert g.method == "trace" and g.consumers["fc"].feats == tuple(("lstm", k) for k in range(6)) * 2
