"""Physical removal of hidden units == the original model with those units' outgoing
connections zeroed (<= 1e-5), for LSTM / GRU / RNN, multi-layer, bidirectional, with
initial states, LSTM projections, and user-written models.

The reference zeroing below is written out per architecture (which columns carry unit k
to the rest of the network), independently of rnnslim's coupling groups."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.graph import CouplingError
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.structured import (
    PruneScope,
    StructuredPruning,
    keep_units_,
    prune_units_,
    unit_groups,
)
from rnnslim.prune.structured.select import round_count

TOL = 1e-5


def removed(keep, size):
    return torch.tensor(sorted(set(range(size)) - set(keep)), dtype=torch.long)


def sequence_model(cell, layers, embed=7, vocab=13, readout="all"):
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=embed,
                     layers=[LayerShape(**kw) for kw in layers], output_size=vocab, readout=readout)
    return SequenceModel(spec).eval()


def zero_outgoing_sequence_model(ref, result):
    """Zero, in SequenceModel `ref`, every connection leaving a removed unit."""
    specs = ref.rnn.specs
    with torch.no_grad():
        for k, spec in enumerate(specs):
            layer = ref.rnn.layers[k]
            sfx = ["_l0", "_l0_reverse"][: spec.directions]
            name = f"rnn.layers.{k}"
            if name in result.keeps:  # hidden units: recurrent (or projection) columns
                r = removed(result.keeps[name], spec.hidden_size)
                for s in sfx:
                    getattr(layer, ("weight_hr" if spec.proj_size else "weight_hh") + s)[:, r] = 0
            out_name = name + (":proj" if spec.proj_size else "")
            if out_name in result.keeps:  # output units: own recurrent columns (proj) and the consumer's columns
                P = spec.proj_size or spec.hidden_size
                r = removed(result.keeps[out_name], P)
                if spec.proj_size:
                    for s in sfx:
                        getattr(layer, "weight_hh" + s)[:, r] = 0
                cols = torch.cat([r + d * P for d in range(spec.directions)])
                if k + 1 < len(specs):
                    nxt = ref.rnn.layers[k + 1]
                    for s in ["_l0", "_l0_reverse"][: specs[k + 1].directions]:
                        getattr(nxt, "weight_ih" + s)[:, cols] = 0
                else:
                    ref.decoder.weight[:, cols] = 0
    return ref


def random_state(model, batch):
    return [tuple(torch.randn_like(t) for t in s) if isinstance(s, tuple) else torch.randn_like(s)
            for s in model.rnn.init_state(batch)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("readout", ["all", "last"])
def test_sequence_model_multi_layer_bidirectional_with_initial_state(cell, readout):
    model = sequence_model(cell, [dict(hidden_size=10), dict(hidden_size=8, bidirectional=True),
                                  dict(hidden_size=9)], readout=readout)
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(ratio=0.4))
    assert [s.hidden_size for s in model.rnn.specs] == [6, 5, 5]
    assert [s.hidden_size for s in model.spec.layer_specs] == [6, 5, 5]  # ModelSpec follows
    zero_outgoing_sequence_model(ref, result)
    x = torch.randint(0, 13, (6, 3))
    state = random_state(ref, 3)
    with torch.no_grad():
        y_ref, st_ref = ref(x, state)
        y, st = model(x, result.slice_stack_state(state))
    assert (y - y_ref).abs().max() <= TOL
    # the returned state is the original's state restricted to the kept units
    for a, b in zip(st, result.slice_stack_state(st_ref)):
        for t, u in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert (t - u).abs().max() <= TOL


def test_lstm_with_projection_prunes_hidden_and_projected_units():
    model = sequence_model("lstm", [dict(hidden_size=10, proj_size=6), dict(hidden_size=8, proj_size=5,
                                                                            bidirectional=True)])
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(ratio=0.5, proj_ratio=0.5))
    assert [(s.hidden_size, s.proj_size) for s in model.rnn.specs] == [(5, 3), (4, 3)]  # halves round up
    zero_outgoing_sequence_model(ref, result)
    x = torch.randint(0, 13, (5, 2))
    state = random_state(ref, 2)
    with torch.no_grad():
        y_ref, _ = ref(x, state)
        y, _ = model(x, result.slice_stack_state(state))
    assert (y - y_ref).abs().max() <= TOL


def test_per_layer_sizes_and_round_to():
    model = sequence_model("gru", [dict(hidden_size=40), dict(hidden_size=30), dict(hidden_size=20)])
    prune_units_(model, StructuredPruning(per_layer={0: 0.5, "rnn.layers.2": 0.25}, round_to=8))
    # 40*0.5=20 -> 24 (nearest multiple of 8, ties up), layer 1 untouched, 20*0.75=15 -> 16
    assert [s.hidden_size for s in model.rnn.specs] == [24, 30, 16]
    assert model(torch.randint(0, 13, (4, 2)))[0].shape == (4, 2, 13)
    assert round_count(3, 5, 8) == 5 and round_count(20, 40, 8) == 24 and round_count(0.2, 9, 1) == 1


def test_global_scope_removes_the_lowest_scored_units():
    model = sequence_model("lstm", [dict(hidden_size=6), dict(hidden_size=6)])
    groups = {g.name: g for g in unit_groups(model)}
    # score every weight 1, except the weights owned by the units we want gone: 0
    scores = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    doomed = {"rnn.layers.0": [1, 2, 4, 5], "rnn.layers.1": [0, 3]}  # uneven: 4 + 2 = half of 12
    for name, units in doomed.items():
        g = groups[name]
        for s in g.slices:
            pos = g.positions(s, torch.tensor(units))
            scores[s.param].index_fill_(s.dim, pos, 0.0)
    result = prune_units_(model, StructuredPruning(ratio=0.5, scope=PruneScope.GLOBAL), scores=scores)
    assert result.keeps == {"rnn.layers.0": [0, 3], "rnn.layers.1": [1, 2, 4, 5]}
    # layer scope removes 3 per layer instead
    r2 = prune_units_(sequence_model("lstm", [dict(hidden_size=6), dict(hidden_size=6)]), StructuredPruning(ratio=0.5))
    assert [len(k) for k in r2.keeps.values()] == [3, 3]


def test_keep_units_and_history_record():
    model = sequence_model("gru", [dict(hidden_size=5), dict(hidden_size=4)])
    w = model.rnn.layers[0].weight_ih_l0.detach().clone()
    keep_units_(model, {"rnn.layers.0": [4, 1]})
    assert torch.equal(model.rnn.layers[0].weight_ih_l0, w[[1, 4, 6, 9, 11, 14]])  # r, z, n rows of units 1, 4
    assert model.history[-1] == {"op": "prune_units", "keep": {"rnn.layers.0": [1, 4]},
                                 "sizes": {"rnn.layers.0": [5, 2]}}


# --- user-written models ----------------------------------------------------------------------
class CnnBiLstm(nn.Module):
    """(B, T, F) -> Conv1d -> ReLU -> BiLSTM (2 layers) -> last step -> Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 3, padding=1)
        self.lstm = nn.LSTM(8, 10, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(20, 4)

    def forward(self, x, hx=None):
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        out, _ = self.lstm(y, hx)
        return self.fc(out[:, -1])


def test_user_cnn_bilstm_linear_with_initial_state():
    model = CnnBiLstm().eval()
    ref = copy.deepcopy(model)
    x = torch.randn(2, 7, 3)
    result = prune_units_(model, StructuredPruning(ratio=0.3), example_inputs=(x,))
    assert model.lstm.hidden_size == 7 and model.fc.in_features == 14 and model.lstm.input_size == 8
    with torch.no_grad():  # reference: zero every column that carries a removed unit
        for layer in (0, 1):
            r = removed(result.keeps[f"lstm[{layer}]"], 10)
            for s in ("", "_reverse"):
                getattr(ref.lstm, f"weight_hh_l{layer}{s}")[:, r] = 0
            nxt = [getattr(ref.lstm, f"weight_ih_l1{s}") for s in ("", "_reverse")]
            target = nxt if layer == 0 else [ref.fc.weight]
            for w in target:
                w[:, torch.cat([r, r + 10])] = 0
    h0, c0 = torch.randn(4, 2, 10), torch.randn(4, 2, 10)
    with torch.no_grad():
        y_ref = ref(x, (h0, c0))
        y = model(x, result.slice_state("lstm", (h0, c0)))
    assert (y - y_ref).abs().max() <= TOL


def test_user_multi_layer_torch_module_unequal_cut_becomes_a_per_layer_stack():
    from rnnslim.recurrent.torch_contract import TorchContractStack

    uneven = CnnBiLstm()
    prune_units_(uneven, StructuredPruning(per_layer={0: 0.5, 1: 0.2}))
    assert isinstance(uneven.lstm, TorchContractStack) and not uneven.lstm.uniform()
    assert [layer.hidden_size for layer in uneven.lstm.layers] == [5, 8]
    model = CnnBiLstm()
    # global scope averages the counts of the module's layers: it stays one torch module
    result = prune_units_(model, StructuredPruning(ratio=0.5, scope="global"))
    n0, n1 = len(result.keeps["lstm[0]"]), len(result.keeps["lstm[1]"])
    assert n0 == n1 and n0 in (5, 6)  # the rounded mean of the two layers' global counts


def test_blocked_groups_are_skipped_or_refused():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru1 = nn.GRU(3, 6)
            self.gru2 = nn.GRU(6, 5)

        def forward(self, x):
            return self.gru2(self.gru1(x)[0])[0]  # gru2's units are the model's output

    model = Encoder()
    result = prune_units_(model, StructuredPruning(ratio=0.5))
    assert list(result.keeps) == ["gru1"] and "gru2" in result.skipped
    assert model.gru2.input_size == 3
    with pytest.raises(CouplingError, match="'gru2' cannot be removed"):
        prune_units_(model, StructuredPruning(per_layer={"gru2": 0.5}))


def test_print_cut_names_tensors_and_indices():
    model = sequence_model("lstm", [dict(hidden_size=4), dict(hidden_size=3)])
    group = unit_groups(model)[0]
    text = str(group.cut([0, 2]))
    assert "remove [1, 3]" in text
    assert "rnn.layers.0.weight_ih_l0: drop rows [1, 3, 5, 7, 9, 11, 13, 15]" in text
    assert "rnn.layers.1.weight_ih_l0: drop cols [1, 3]" in text


class GruChain(nn.Module):
    """GRU -> tanh -> BiGRU; a head on both directions' final states (h_n[-2], h_n[-1])."""

    def __init__(self):
        super().__init__()
        self.gru1 = nn.GRU(5, 9)
        self.gru2 = nn.GRU(9, 6, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(12, 3))

    def forward(self, x, h1=None):
        if x.abs().sum() < 0:  # data-dependent: torch.fx cannot trace this, the traced fallback runs
            x = -x
        a, _ = self.gru1(x, h1)
        _, h = self.gru2(torch.tanh(a))
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


def test_user_gru_chain_on_final_states_via_traced_fallback():
    model = GruChain().eval()
    ref = copy.deepcopy(model)
    x = torch.randn(6, 2, 5)
    result = prune_units_(model, StructuredPruning(ratio=0.5), example_inputs=(x,))
    assert (model.gru1.hidden_size, model.gru2.input_size, model.head[1].in_features) == (5, 5, 6)
    r1, r2 = removed(result.keeps["gru1"], 9), removed(result.keeps["gru2"], 6)
    with torch.no_grad():
        ref.gru1.weight_hh_l0[:, r1] = 0
        for s in ("", "_reverse"):
            getattr(ref.gru2, "weight_ih_l0" + s)[:, r1] = 0
            getattr(ref.gru2, "weight_hh_l0" + s)[:, r2] = 0
        ref.head[1].weight[:, torch.cat([r2, r2 + 6])] = 0
    h1 = torch.randn(1, 2, 9)
    with torch.no_grad():
        y_ref, y = ref(x, h1), model(x, result.slice_state("gru1", h1))
    assert (y - y_ref).abs().max() <= TOL


def test_user_lstm_into_conv1d_consumer():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 8, batch_first=True)
            self.conv = nn.Conv1d(8, 5, 3, padding=1)
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(self.conv(out.transpose(1, 2)).mean(-1))

    model = M().eval()
    ref = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(ratio=0.5))
    assert model.conv.in_channels == 4
    r = removed(result.keeps["lstm"], 8)
    with torch.no_grad():
        ref.lstm.weight_hh_l0[:, r] = 0
        ref.conv.weight[:, r, :] = 0
        x = torch.randn(3, 6, 4)
        assert (model(x) - ref(x)).abs().max() <= TOL


def test_prune_dispatch_accepts_structured_pruning():
    from rnnslim.prune import prune_

    model = sequence_model("gru", [dict(hidden_size=8)])
    result = prune_(model, StructuredPruning(ratio=0.25))
    assert result.sizes == {"rnn.layers.0": (8, 6)} and model.rnn.specs[0].hidden_size == 6


@pytest.mark.parametrize("reduce, kept", [(None, [0]), ("l2", [0]), ("l1", [1])])
def test_a_units_scores_add_up_by_group_norm_unless_l1_is_asked(reduce, kept):
    # unit 0 owns one row of n weights scored 3, unit 1 four rows scored 1: L1 3n vs 4n, L2 3 sqrt(n)
    # vs 2 sqrt(n), so the default (l2 since 2026-12) keeps unit 0 and l1 keeps unit 1
    model = sequence_model("lstm", [dict(hidden_size=2)])
    g = next(g for g in unit_groups(model) if g.name == "rnn.layers.0")
    scores = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    s = g.slices[0]
    pos0, pos1 = g.positions(s, torch.tensor([0])), g.positions(s, torch.tensor([1]))
    assert len(pos1) >= 4  # a unit's slice of its first tensor: its 4 gate rows at least
    scores[s.param].index_fill_(s.dim, pos0[:1], 3.0)
    scores[s.param].index_fill_(s.dim, pos1[:4], 1.0)
    cfg = StructuredPruning(ratio=0.5) if reduce is None else StructuredPruning(ratio=0.5, reduce=reduce)
    assert prune_units_(model, cfg, scores=scores).keeps == {"rnn.layers.0": kept}
