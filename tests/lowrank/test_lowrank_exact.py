"""lowrank_ / to_lstmp_ are exact at full rank and degrade gracefully below it."""

from __future__ import annotations

import copy

import pytest
import torch
from lowrank_models import inputs, make, out

from rnnslim.lowrank import LowRank, ToLSTMP, lowrank_, to_lstmp_
from rnnslim.models.sequence import LayerShape, ModelSpec, SequenceModel


@pytest.mark.parametrize("cell,kind,scope", [("lstm", "embedding", "stacked"), ("lstm", "linear", "per_gate"),
                                              ("lstm", "identity", "stacked"), ("gru", "embedding", "per_gate"),
                                              ("gru", "linear", "stacked"), ("gru", "identity", "per_gate")])
def test_full_rank_input_and_output_are_exact(cell, kind, scope):
    m = make(cell, kind)
    x = inputs(m)
    y = out(m, x)
    res = lowrank_(m, LowRank(targets=["input", "output"], rank=10_000, scope=scope))
    assert set(res.ranks) == {"input.0", "input.1", "output"}
    assert m.spec.layers[1].input_rank > 0 and m.spec.decoder_rank == 7  # bottleneck in front of layer 1, low-rank head
    if kind == "embedding":  # layer 0 folded into the embedding: it now has rank-many columns
        assert m.embedding.weight.shape[1] == m.spec.embed_size == m.rnn.layers[0].input_size
    else:
        assert m.spec.input_kind.value == "linear" and m.input_proj.out_features == m.spec.embed_size
    torch.testing.assert_close(out(m, x), y, atol=2e-5, rtol=1e-4)


def test_embedding_fold_is_exact_at_vocabulary_rank_and_smaller():
    m = make(embed=32, hidden=(48,))
    x = inputs(m)
    y = out(m, x)
    before = sum(p.numel() for p in m.parameters())
    res = lowrank_(m, LowRank(targets=["input"], rank=9))  # 9 symbols: W_ih @ E^T has rank <= 9
    assert res.sites[0].energy_kept == pytest.approx(1.0) and res.params_after < before
    assert sum(p.numel() for p in m.parameters()) == res.params_after
    torch.testing.assert_close(out(m, x), y, atol=2e-5, rtol=1e-4)


def _readers_rank_deficient(m, k, rank):
    """Make every reader of layer k's h (W_hh_k and the next W_ih / decoder) rank `rank` jointly."""
    layer = m.rnn.layers[k]
    nxt = m.rnn.layers[k + 1].weight_ih_l0 if k + 1 < m.rnn.num_layers else m.decoder.weight
    stack = torch.cat([layer.weight_hh_l0, nxt], 0).detach()
    u, s, vh = torch.linalg.svd(stack, full_matrices=False)
    low = (u[:, :rank] * s[:rank]) @ vh[:rank]
    with torch.no_grad():
        layer.weight_hh_l0.copy_(low[:layer.weight_hh_l0.shape[0]])
        nxt.copy_(low[layer.weight_hh_l0.shape[0]:])


def test_lstmp_at_h_minus_1_is_exact_when_the_readers_allow_it():
    m = make(hidden=(12, 10))
    _readers_rank_deficient(m, 0, 11)
    _readers_rank_deficient(m, 1, 9)
    x = inputs(m)
    y = out(m, x)
    res = to_lstmp_(m, ToLSTMP(proj_size=(11, 9)))
    assert [ly.proj_size for ly in m.spec.layers] == [11, 9]
    assert [s.energy_kept for s in res.sites] == [pytest.approx(1.0), pytest.approx(1.0)]
    torch.testing.assert_close(out(m, x), y, atol=2e-5, rtol=1e-4)


def test_lstmp_equals_the_truncated_product():
    """At any P the LSTMP model equals the LSTM whose readers are replaced by their rank-P product."""
    m = make(hidden=(12,))
    ref = copy.deepcopy(m)
    _readers_rank_deficient(ref, 0, 5)  # the exact product M_5 of [W_hh; decoder]
    to_lstmp_(m, ToLSTMP(proj_size=5))
    x = inputs(m)
    torch.testing.assert_close(out(m, x), out(ref, x), atol=2e-5, rtol=1e-4)


def test_lstmp_of_an_lstmp_and_error_falls_with_p():
    m = make(hidden=(16, 16), proj=12)  # already projected: the new basis comes from R @ W_hr
    x = inputs(m, T=20)
    y = out(m, x)
    errs = []
    for p in (2, 6, 10):
        m2 = copy.deepcopy(m)
        to_lstmp_(m2, ToLSTMP(proj_size=p))
        errs.append(float((out(m2, x) - y).norm() / y.norm()))
    assert errs[0] > errs[1] > errs[2]
    m2 = copy.deepcopy(m)
    to_lstmp_(m2, ToLSTMP(energy=1.0))  # full energy of a rank-12 stack: P = 12, exact
    assert [ly.proj_size for ly in m2.spec.layers] == [12, 12]
    torch.testing.assert_close(out(m2, x), y, atol=2e-5, rtol=1e-4)


def test_recurrent_target_is_lstmp_and_covers_next_input_and_head():
    m = make(hidden=(12, 10))
    res = lowrank_(m, LowRank(targets=["input", "recurrent", "output"], energy=0.8))
    assert set(res.ranks) <= {"recurrent.0", "recurrent.1", "input.0"}  # input.1 and output live in the projections
    assert all(ly.input_rank == 0 for ly in m.spec.layers) and m.spec.decoder_rank == 0
    assert [ly.proj_size > 0 for ly in m.spec.layers] == ["recurrent.0" in res.ranks, "recurrent.1" in res.ranks]


def test_tied_and_bidirectional_models():
    torch.manual_seed(0)
    tied = SequenceModel(ModelSpec(cell="lstm", input_kind="embedding", input_size=9, embed_size=10, output_size=9,
                                   layers=[LayerShape(hidden_size=10)], tie_weights=True)).eval()
    x = inputs(tied)
    y = out(tied, x)
    lowrank_(tied, LowRank(targets=["input"], rank=10))  # the embedding is also the head: a bottleneck, no fold
    assert tied.spec.layers[0].input_rank == 10 and tied.decoder.weight is tied.embedding.weight
    torch.testing.assert_close(out(tied, x), y, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="tied"):
        lowrank_(tied, LowRank(targets=["output"], rank=2))
    bi = SequenceModel(ModelSpec(cell="gru", input_kind="linear", input_size=9, embed_size=8, output_size=7,
                                 layers=[LayerShape(hidden_size=6, bidirectional=True), LayerShape(hidden_size=5)])).eval()
    x = inputs(bi)
    y = out(bi, x)
    lowrank_(bi, LowRank(targets=["input"], rank=100))  # both directions share one input factor
    torch.testing.assert_close(out(bi, x), y, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="bidirectional"):
        to_lstmp_(_bidir_lstm(), ToLSTMP(proj_size=2))


def _bidir_lstm():
    return SequenceModel(ModelSpec(cell="lstm", input_kind="linear", input_size=9, embed_size=8, output_size=7,
                                   layers=[LayerShape(hidden_size=6, bidirectional=True)]))
