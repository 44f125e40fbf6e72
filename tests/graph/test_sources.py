"""Feature sources: the embedding / input Linear whose features recurrent layer 0 reads is
found by torch.fx, with its consumers, and blocked where its width is visible or unknown."""

import torch
from torch import nn

from rnnslim.graph import GroupKind, build_groups, discover_coupling
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


def test_sequence_model_embedding_is_a_source_of_layer_0():
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=11, embed_size=6,
                     layers=[LayerShape(hidden_size=5, bidirectional=True), LayerShape(hidden_size=4)], output_size=11)
    m = SequenceModel(spec)
    g = discover_coupling(m)
    src = g.sources["embedding"]
    assert src.size == 6 and list(src.consumers) == ["rnn.layers.0"] and src.blocked is None
    assert "embedding: embedding source (6 embed features) -> rnn.layers.0 (recurrent, 6 inputs)" in str(g)
    groups = build_groups(m, g)
    assert [x.name for x in groups][:2] == ["rnn.layers.0", "rnn.layers.1"]  # recurrent groups stay first
    emb = {x.name: x for x in groups}["embedding"]
    assert emb.kind is GroupKind.EMBED and emb.size == 6
    assert [(s.param, s.dim) for s in emb.slices] == [("embedding.weight", 1), ("rnn.layers.0.weight_ih_l0", 1),
                                                      ("rnn.layers.0.weight_ih_l0_reverse", 1)]


def test_linear_input_projection_is_a_source_but_not_the_decoder():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.LINEAR, input_size=3, embed_size=6,
                     layers=[LayerShape(hidden_size=5)], output_size=2, readout="last")
    m = SequenceModel(spec)
    g = discover_coupling(m, example_inputs=(torch.randn(4, 2, 3),))
    assert list(g.sources) == ["input_proj"]
    emb = build_groups(m, g)[-1]
    assert [(s.param, s.dim) for s in emb.slices] == [("input_proj.weight", 0), ("input_proj.bias", 0),
                                                      ("rnn.layers.0.weight_ih_l0", 1)]


class Chain(nn.Module):
    """Embedding -> Linear -> dropout -> LSTM (batch first) -> Linear -> LSTM -> Linear."""

    def __init__(self, expose=False, norm=False):
        super().__init__()
        self.expose, self.norm = expose, nn.LayerNorm(8) if norm else None
        self.embedding = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 7)
        self.lstm1 = nn.LSTM(7, 6, batch_first=True)
        self.mid = nn.Linear(6, 5)
        self.lstm2 = nn.LSTM(5, 4, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        e = self.embedding(x)
        if self.norm is not None:
            e = self.norm(e)
        h, _ = self.lstm1(nn.functional.dropout(torch.relu(self.proj(e)), 0.1, self.training))
        h, _ = self.lstm2(self.mid(h))
        return (self.fc(h), e) if self.expose else self.fc(h)


def test_the_linear_feeding_the_lstm_is_the_source_and_consumers_of_recurrent_units_are_not():
    g = discover_coupling(Chain())
    assert list(g.sources) == ["proj"]  # the embedding feeds a Linear, "mid" reads lstm1's units
    assert g.sources["proj"].consumers["lstm1"].feats == tuple(("proj", j) for j in range(7))


def test_blocked_sources_say_why_and_hidden_units_are_unaffected():
    m = Chain(norm=True)
    m.proj = nn.Identity()
    m.lstm1 = nn.LSTM(8, 6, batch_first=True)
    g = discover_coupling(m)
    assert "LayerNorm" in g.sources["embedding"].blocked and not g.unresolved
    m = Chain(expose=True)
    m.proj = nn.Identity()
    m.lstm1 = nn.LSTM(8, 6, batch_first=True)
    g = discover_coupling(m)
    assert "output directly" in g.sources["embedding"].blocked
    assert {x.name: x.blocked for x in build_groups(m, g)}["lstm1"] is None


def test_untraceable_forward_finds_no_source_and_says_so():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10, 8)
            self.gru = nn.GRU(8, 6)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            if x.sum() < 0:  # data-dependent: fx cannot trace
                x = -x
            return self.fc(self.gru(self.embedding(x))[0])

    g = discover_coupling(M(), example_inputs=(torch.randint(0, 10, (5, 2)),))
    assert g.method == "trace" and g.sources == {}
    assert any("embedding width cannot be pruned" in n for n in g.notes)
