"""Importance criteria: shapes, agreement with hand-computed values, sensible rankings, reducers."""

import pytest
import torch
from torch.nn import functional as F

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.importance import (
    Calibration,
    Criterion,
    fisher_scores,
    magnitude_scores,
    per_gate_row,
    per_unit,
    score_model,
    taylor_scores,
)
from rnnslim.recurrent.gates import gate_count, unit_rows
from rnnslim.tasks.base import Batch
from rnnslim.tasks.charlm import CharLMTask

TEXT = ("the quick brown fox jumps over the lazy dog. " * 30 + "pack my box with five dozen liquor jugs! " * 30)


def _model(cell="lstm", layers=((12, 0, False), (10, 0, False)), vocab=20, tie=False):
    shapes = [LayerShape(hidden_size=h, proj_size=p, bidirectional=b) for h, p, b in layers]
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=8, layers=shapes,
                     output_size=vocab, dropout=0.3, tie_weights=tie)
    return SequenceModel(spec)


def _loss(outputs, batch):
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), batch.targets.reshape(-1))


def _batches(n=2, vocab=20, used=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    hi = used or vocab
    return [Batch(torch.randint(0, hi, (12, 3), generator=g), torch.randint(0, vocab, (12, 3), generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("criterion", list(Criterion))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_criterion_scores_every_parameter_with_its_shape(criterion, cell):
    m = _model(cell, layers=((12, 0, True), (10, 0, False)))
    cal = Calibration(_batches(), _loss)
    scores = score_model(m, criterion, cal)
    assert set(scores) == {n for n, _ in m.named_parameters()}
    for n, s in scores.items():
        assert s.shape == m.get_parameter(n).shape and s.dtype == torch.float32
        assert torch.all(s >= 0) and torch.isfinite(s).all()


def test_scoring_is_pure():
    task = CharLMTask(text=TEXT)
    m = SequenceModel(task.model_spec(hidden_size=8, num_layers=2, dropout=0.5)).train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    for c in Criterion:
        score_model(m, c, task, n_batches=2)
    assert m.training and all(mod.training for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


def test_taylor_is_zero_where_the_gradient_is_zero_and_matches_manual():
    m = _model()
    cal = Calibration(_batches(n=2, used=10), _loss)  # tokens 10..19 never appear as inputs
    scores = taylor_scores(m, cal)
    assert torch.all(scores["embedding.weight"][10:] == 0) and torch.all(scores["embedding.weight"][:10] > 0)
    m.eval()
    manual = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    for b in cal.batches:
        m.zero_grad()
        _loss(m(b.inputs)[0], b).backward()
        for n, p in m.named_parameters():
            manual[n] += (p.grad * p.detach()).abs() / len(cal.batches)
    for n in manual:
        torch.testing.assert_close(scores[n], manual[n], rtol=1e-4, atol=1e-7)


def test_fisher_matches_manual_obd():
    m = _model("gru")
    cal = Calibration(_batches(n=3), _loss)
    scores = fisher_scores(m, cal, names=["rnn.layers.0.weight_hh_l0", "decoder.weight"])
    assert set(scores) == {"rnn.layers.0.weight_hh_l0", "decoder.weight"}
    m.eval()
    g2 = {n: 0 for n in scores}
    for b in cal.batches:
        m.zero_grad()
        _loss(m(b.inputs)[0], b).backward()
        for n in scores:
            g2[n] = g2[n] + m.get_parameter(n).grad.pow(2) / 3
    for n in scores:
        torch.testing.assert_close(scores[n], 0.5 * g2[n] * m.get_parameter(n).detach().pow(2), rtol=1e-4, atol=1e-9)


def test_stateful_calibration_carries_state():
    m = _model()
    bs = _batches(n=2)
    a = taylor_scores(m, Calibration(bs, _loss, stateful=False))
    b = taylor_scores(m, Calibration(bs, _loss, stateful=True))
    assert not torch.allclose(a["rnn.layers.0.weight_hh_l0"], b["rnn.layers.0.weight_hh_l0"])


def test_first_order_ranking_predicts_loss_change():
    """Zeroing the decoder weights Taylor ranks highest hurts more than zeroing the lowest."""
    task = CharLMTask(text=TEXT)
    m = SequenceModel(task.model_spec(hidden_size=16, num_layers=1)).eval()
    cal = Calibration(task.calibration_batches(4, 8, 32), task.loss)
    s = taylor_scores(m, cal, names=["decoder.weight"])["decoder.weight"].reshape(-1)
    k = s.numel() // 10
    w0 = m.decoder.weight.detach().clone()

    def loss_without(idx):
        with torch.no_grad():
            m.decoder.weight.copy_(w0)
            m.decoder.weight.view(-1)[idx] = 0
            out = sum(task.loss(m(b.inputs)[0], b).item() for b in cal.batches)
            m.decoder.weight.copy_(w0)
        return out

    assert loss_without(s.topk(k).indices) > loss_without(s.topk(k, largest=False).indices)


def test_gradient_criteria_need_a_loss():
    with pytest.raises(ValueError, match="needs a loss"):
        taylor_scores(_model(), _batches())
    with pytest.raises(ValueError, match="needs calibration data"):
        score_model(_model(), "fisher")


def test_per_gate_row():
    s = torch.rand(4 * 6, 5)
    rows = per_gate_row(s, "lstm", 6)
    assert rows.shape == (4, 6)
    torch.testing.assert_close(rows[2, 3], s[2 * 6 + 3].sum())
    assert per_gate_row(torch.rand(18), "gru", 6).shape == (3, 6)
    with pytest.raises(ValueError, match="has 18 rows"):
        per_gate_row(torch.rand(20, 2), "gru", 6)


def _manual_unit_sum(m, scores, layer, k):
    """Sum of scores over the union of entries coupled to unit k, built entry by entry."""
    spec, cell = m.rnn.specs[layer], m.rnn.cell
    H, D = spec.hidden_size, spec.directions
    rows = unit_rows(cell, H, [k])
    total = 0.0
    for sfx in ("", "_reverse")[:D]:
        base = f"rnn.layers.{layer}."
        for t in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            name = f"{base}{t}_l0{sfx}"
            if name not in scores:
                continue
            sel = torch.zeros_like(scores[name], dtype=torch.bool)
            if t == "weight_hr":
                sel[:, k] = True
            else:
                sel[rows] = True
                if t == "weight_hh" and not spec.proj_size:
                    sel[:, k] = True
            total += scores[name][sel].sum()
    if not spec.proj_size:
        if layer + 1 < m.rnn.num_layers:
            d_next = m.rnn.specs[layer + 1].directions
            nxt = [f"rnn.layers.{layer + 1}.weight_ih_l0{s}" for s in ("", "_reverse")[:d_next]]
        else:
            nxt = ["decoder.weight"]
        for name in nxt:
            for d in range(D):
                total += scores[name][:, d * H + k].sum()
    return total


@pytest.mark.parametrize("cell,layers", [
    ("lstm", ((6, 0, True), (5, 0, True), (4, 0, False))),
    ("gru", ((6, 0, False), (5, 0, True))),
    ("lstm", ((6, 3, False), (5, 0, False))),
])
def test_per_unit_equals_manual_sums(cell, layers):
    m = _model(cell, layers)
    scores = {n: torch.rand_like(p) for n, p in m.named_parameters()}
    for layer in range(len(layers)):
        units = per_unit(m, scores, layer)
        assert units.shape == (layers[layer][0],)
        for k in range(layers[layer][0]):
            torch.testing.assert_close(units[k], torch.as_tensor(_manual_unit_sum(m, scores, layer, k)).float())


def test_per_unit_uses_magnitude_of_a_real_model():
    m = _model("gru")
    scores = magnitude_scores(m)
    u = per_unit(m, scores, 1)
    # unit 3 of the last GRU layer: 3 gate rows in each of 4 tensors, column 3 of W_hh, column 3 of the decoder
    H = 10
    G = gate_count("gru")
    rows = unit_rows("gru", H, [3])
    hh = scores["rnn.layers.1.weight_hh_l0"]
    expect = (scores["rnn.layers.1.weight_ih_l0"][rows].sum() + hh[rows].sum() + hh[:, 3].sum() - hh[rows, 3].sum()
              + scores["rnn.layers.1.bias_ih_l0"][rows].sum() + scores["rnn.layers.1.bias_hh_l0"][rows].sum()
              + scores["decoder.weight"][:, 3].sum())
    assert G == 3
    torch.testing.assert_close(u[3], expect)
    with pytest.raises(IndexError, match="out of range"):
        per_unit(m, scores, 2)


def test_gradient_criteria_on_a_forward_that_requires_the_hidden_state():
    """PyTorch's word-LM example: forward(input, hidden) with no default; the first batch gets None."""
    from torch import nn

    from rnnslim.prune.importance import Calibration, score_model
    from rnnslim.tasks.base import Batch

    class WordLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(11, 6)
            self.rnn = nn.LSTM(6, 6)
            self.decoder = nn.Linear(6, 11)

        def forward(self, input, hidden):
            out, hidden = self.rnn(self.encoder(input), hidden)
            return self.decoder(out), hidden

    g = torch.Generator().manual_seed(0)
    batches = [Batch(torch.randint(0, 11, (5, 2), generator=g), torch.randint(0, 11, (5, 2), generator=g))
               for _ in range(2)]
    loss = lambda out, b: F.cross_entropy(out.reshape(-1, 11), b.targets.reshape(-1))  # noqa: E731
    scores = score_model(WordLM(), "taylor", Calibration(batches, loss, stateful=True), names=["rnn.weight_hh_l0"])
    assert scores["rnn.weight_hh_l0"].shape == (24, 6) and bool((scores["rnn.weight_hh_l0"] > 0).any())
