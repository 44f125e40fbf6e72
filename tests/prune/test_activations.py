"""Activation-aware importance: the input norms equal hand-computed ones from torch's own modules."""

import pytest
import torch
from torch import nn

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.activations import input_square_sums
from rnnslim.prune.importance import activation_scores
from rnnslim.recurrent.cells import DirectionWeights, lstm_cell
from rnnslim.recurrent.stack import RecurrentStack
from rnnslim.tasks.base import Batch


def _model(cell, layers, vocab=15):
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=vocab, embed_size=6,
                     layers=[LayerShape(hidden_size=h, proj_size=p) for h, p in layers], output_size=vocab, dropout=0.4)
    return SequenceModel(spec)


def _batches(n=2, vocab=15, T=9, B=3):
    g = torch.Generator().manual_seed(1)
    return [Batch(torch.randint(0, vocab, (T, B), generator=g), torch.randint(0, vocab, (T, B), generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_sums_match_torch_outputs(cell):
    m = _model(cell, [(7, 0), (5, 0)]).train()  # dropout must be off while collecting
    batches = _batches()
    sums = input_square_sums(m, batches)
    m.eval()
    want = {k: 0 for k in ("emb", "ih0", "hh0", "ih1", "hh1", "dec")}
    with torch.no_grad():
        for b in batches:
            x = m.embedding(b.inputs)  # (T, B, 6)
            y0, _ = m.rnn.layers[0](x)
            y1, _ = m.rnn.layers[1](y0)
            want["emb"] = want["emb"] + torch.bincount(b.inputs.reshape(-1), minlength=15).float()
            want["ih0"] = want["ih0"] + x.pow(2).sum((0, 1))
            want["hh0"] = want["hh0"] + y0[:-1].pow(2).sum((0, 1))  # h_{t-1}; h_{-1} = 0
            want["ih1"] = want["ih1"] + y0.pow(2).sum((0, 1))
            want["hh1"] = want["hh1"] + y1[:-1].pow(2).sum((0, 1))
            want["dec"] = want["dec"] + y1.pow(2).sum((0, 1))
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    close(sums["embedding.weight"], want["emb"].unsqueeze(1))
    close(sums["rnn.layers.0.weight_ih_l0"], want["ih0"].unsqueeze(0))
    close(sums["rnn.layers.0.weight_hh_l0"], want["hh0"].unsqueeze(0))
    close(sums["rnn.layers.1.weight_ih_l0"], want["ih1"].unsqueeze(0))
    close(sums["rnn.layers.1.weight_hh_l0"], want["hh1"].unsqueeze(0))
    close(sums["decoder.weight"], want["dec"].unsqueeze(0))
    assert float(sums["decoder.bias"]) == 2 * 9 * 3 and float(sums["rnn.layers.1.bias_hh_l0"]) == 2 * 9 * 3


def test_projection_input_is_the_pre_projection_state():
    m = _model("lstm", [(8, 3)]).eval()
    batches = _batches(n=1)
    sums = input_square_sums(m, batches)
    layer = m.rnn.layers[0]
    w = DirectionWeights(layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0, None)
    with torch.no_grad():
        x = m.embedding(batches[0].inputs)
        y, _ = layer(x)
        h, c = torch.zeros(3, 3), torch.zeros(3, 8)
        rr, hh = 0, 0
        for t in range(x.shape[0]):
            hh = hh + h.pow(2).sum(0)
            r, c = lstm_cell(x[t], h, c, w)
            rr = rr + r.pow(2).sum(0)
            h = r @ layer.weight_hr_l0.t()
            torch.testing.assert_close(h, y[t], rtol=1e-4, atol=1e-5)  # r really is what the projection reads
    torch.testing.assert_close(sums["rnn.layers.0.weight_hr_l0"], rr.unsqueeze(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sums["rnn.layers.0.weight_hh_l0"], hh.unsqueeze(0), rtol=1e-4, atol=1e-5)


def test_multilayer_bidirectional_torch_module():
    torch.manual_seed(0)
    gru = nn.GRU(4, 5, num_layers=2, bidirectional=True).eval()
    x = torch.randn(6, 2, 4)
    h0 = torch.randn(4, 2, 5)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = gru

        def forward(self, inputs, state=None):
            return self.gru(inputs, h0)

    sums = input_square_sums(Wrap(), [Batch(x, x)])
    stack = RecurrentStack.from_torch(gru).eval()
    with torch.no_grad():
        y0, _ = stack.layers[0](x, h0[:2])
        fwd, rev = y0[..., :5], y0[..., 5:]
    torch.testing.assert_close(sums["gru.weight_ih_l1"], y0.pow(2).sum((0, 1)).unsqueeze(0), rtol=1e-4, atol=1e-5)
    # forward direction reads h_{t-1} (h0 first), reverse reads h_{t+1} (its own h0 last)
    want_f = fwd[:-1].pow(2).sum((0, 1)) + h0[0].pow(2).sum(0)
    want_r = rev[1:].pow(2).sum((0, 1)) + h0[1].pow(2).sum(0)
    torch.testing.assert_close(sums["gru.weight_hh_l0"], want_f.unsqueeze(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sums["gru.weight_hh_l0_reverse"], want_r.unsqueeze(0), rtol=1e-4, atol=1e-5)


def test_scores_are_weight_times_input_norm_and_zero_for_dead_inputs():
    m = _model("lstm", [(7, 0)])
    batches = _batches(n=1, vocab=5)  # tokens 5..14 never seen
    s = activation_scores(m, batches)
    assert torch.all(s["embedding.weight"][5:] == 0) and torch.all(s["embedding.weight"][:5] > 0)
    sums = input_square_sums(m, batches)
    torch.testing.assert_close(s["decoder.weight"], m.decoder.weight.detach().abs() * sums["decoder.weight"].sqrt())
    with torch.no_grad():  # a dead input feature: column of zeros in the embedding
        m.embedding.weight[:, 2] = 0
    s = activation_scores(m, batches, names=["rnn.layers.0.weight_ih_l0"])
    assert torch.all(s["rnn.layers.0.weight_ih_l0"][:, 2] == 0)


def test_missing_inputs_are_reported():
    m = _model("gru", [(4, 0)])
    with pytest.raises(ValueError, match="no calibration inputs reach"):
        activation_scores(m, _batches(n=1), names=["rnn.layers.0.weight_ih_l0", "nonexistent.weight"])
