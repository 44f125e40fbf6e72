"""Early-exit inference: thresholds >= 1 run the full model, 0 stops at exit 1, the layer-steps
counted are the ones the layers really computed, routed samples get their exit's logits;
whole-sequence and streaming, LSTM and GRU."""

from __future__ import annotations

import pytest
import torch

from rnnslim.early_exit import EarlyExit, add_exits_, exit_predict
from rnnslim.early_exit.outputs import capture_layers, confidence, exit_logits
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel

T, B, F, C, L = 7, 24, 3, 4, 3


def classifier(cell: str = "lstm", layers: int = L, readout: Readout = Readout.LAST, hidden: int = 0) -> SequenceModel:
    spec = ModelSpec(cell=cell, input_kind=InputKind.LINEAR, input_size=F, embed_size=8,
                     layers=[LayerShape(hidden_size=12)] * layers, output_size=C, readout=readout)
    model = SequenceModel(spec).eval()
    add_exits_(model, EarlyExit(hidden=hidden))
    with torch.no_grad():  # spread the heads' confidences so mid thresholds route samples apart
        for head in model.exits.heads:
            for p in head.parameters():
                p.mul_(6.0)
    return model


class StepCounter:
    """Counts (time steps x samples) each recurrent layer really computes."""

    def __init__(self, model):
        self.n = 0
        self.handles = [layer.register_forward_hook(self.hook) for layer in model.rnn.layers]

    def hook(self, module, args, output):
        self.n += output[0].shape[0] * output[0].shape[1]


def midpoint(conf: torch.Tensor, q: float) -> float:
    """A threshold between two observed confidences near quantile q (no sample sits on it)."""
    v = conf.detach().flatten().unique().sort().values
    k = min(int(q * len(v)), len(v) - 2)
    return float((v[k] + v[k + 1]) / 2)


@pytest.fixture
def x():
    return torch.randn(T, B, F, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("early_time", [False, True])
def test_threshold_one_or_more_is_the_full_model(cell, early_time, x):
    m = classifier(cell)
    ref, _ = m(x)
    for thr in (1.0, 1.5):
        r = exit_predict(m, x, thr, early_time=early_time)
        torch.testing.assert_close(r.logits, ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(r.logits.argmax(-1), ref.argmax(-1))
        assert r.layer_steps == r.total_layer_steps == T * L * B and r.fraction == 1.0
        assert r.head_evals == 0 and bool((r.exit_layer == L).all()) and bool((r.steps_read == T).all())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_threshold_zero_runs_only_layer_one(cell, x):
    m = classifier(cell)
    counter = StepCounter(m)
    r = exit_predict(m, x, 0.0)
    assert bool((r.exit_layer == 1).all()) and r.layer_steps == T * B == counter.n
    with capture_layers(m) as hs, torch.no_grad():
        m(x)
        z1 = exit_logits(m, hs)[0]
    torch.testing.assert_close(r.logits, z1, rtol=1e-5, atol=1e-5)
    s = exit_predict(m, x, 0.0, early_time=True)  # streaming: the first step's first exit answers
    assert s.layer_steps == B and bool((s.steps_read == 1).all()) and bool((s.exit_layer == 1).all())


@pytest.mark.parametrize(("cell", "readout"), [("lstm", Readout.LAST), ("gru", Readout.MEAN)])
def test_routing_counts_and_logits_match_the_exits_taken(cell, readout, x):
    m = classifier(cell, readout=readout, hidden=5)
    with capture_layers(m) as hs, torch.no_grad():
        m(x)
        zs = exit_logits(m, hs)  # every exit's logits for every sample
    conf = torch.stack([confidence(z) for z in zs[:-1]])  # (L-1, B)
    thr = midpoint(conf, 0.5)
    counter = StepCounter(m)
    r = exit_predict(m, x, thr)
    first = [next((k + 1 for k in range(L - 1) if conf[k, i] >= thr), L) for i in range(B)]
    assert r.exit_layer.tolist() == first
    assert 1 < len(set(first))  # the threshold really splits the batch
    assert r.layer_steps == counter.n == int((T * r.exit_layer).sum()) < T * L * B
    for i, k in enumerate(first):
        torch.testing.assert_close(r.logits[i], zs[k - 1][i], rtol=1e-4, atol=1e-5)
    for i in range(0, B, 5):  # one sequence at a time: the same exits and answers
        one = exit_predict(m, x[:, i : i + 1], thr)
        assert int(one.exit_layer) == first[i] and one.layer_steps == T * first[i]
        torch.testing.assert_close(one.logits[0], r.logits[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cell", "readout"), [("lstm", Readout.LAST), ("gru", Readout.MEAN)])
def test_streaming_stops_reading_when_confident(cell, readout, x):
    m = classifier(cell, readout=readout)
    with capture_layers(m) as hs, torch.no_grad():
        m(x)
        zs = exit_logits(m, hs, over_time=True)  # L x (T, B, C): every prefix's answer
    conf = torch.stack([confidence(z) for z in zs], -1)  # (T, B, L)
    thr = midpoint(conf, 0.9)
    counter = StepCounter(m)
    r = exit_predict(m, x, thr, early_time=True)
    for i in range(B):  # the first confident (step, layer), step-major; else the decoder at the end
        flat = conf[:, i].flatten()
        hits = torch.nonzero(flat[:-1] >= thr)
        j = int(hits[0]) if len(hits) else T * L - 1
        assert (int(r.steps_read[i]), int(r.exit_layer[i])) == (j // L + 1, j % L + 1)
        torch.testing.assert_close(r.logits[i], zs[j % L][j // L, i], rtol=1e-4, atol=1e-5)
    assert r.layer_steps == counter.n == int((L * (r.steps_read - 1) + r.exit_layer).sum()) < T * L * B


def test_needs_a_threshold_and_features(x):
    m = classifier()
    with pytest.raises(ValueError, match="no threshold"):
        exit_predict(m, x)
    with pytest.raises(ValueError, match="no streaming threshold"):
        exit_predict(m, x, early_time=True)
    m.exits.set_thresholds(threshold=0.5)
    assert exit_predict(m, x).layer_steps > 0
    with pytest.raises(ValueError, match=r"\(T, B, F\)"):
        exit_predict(m, x[:, 0])
    with pytest.raises(ValueError, match=">= 0"):
        exit_predict(m, x, -0.1)
