"""Calibration Hessians: equal to X^T X / N of the inputs torch's own modules see."""

import pytest
import torch
from torch import nn

from rnnslim.prune.activations import input_square_sums
from rnnslim.reconstruct.hessian import collect_hessians
from reconstruct_helpers import batches, small_model


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hessians_match_hand_computed_inputs(cell):
    m = small_model(cell)
    data = batches(3)
    names = ["rnn.layers.0.weight_ih_l0", "rnn.layers.1.weight_ih_l0", "rnn.layers.1.weight_hh_l0", "decoder.weight"]
    hs = collect_hessians(m, data, names)
    xs = {"ih0": [], "ih1": [], "dec": []}
    with torch.no_grad():
        for b in data:
            x = m.embedding(b.inputs)
            y0, _ = m.rnn.layers[0](x)
            y1, _ = m.rnn.layers[1](y0)
            xs["ih0"].append(x.reshape(-1, x.shape[-1]))
            xs["ih1"].append(y0.reshape(-1, y0.shape[-1]))
            xs["dec"].append(y1.reshape(-1, y1.shape[-1]))
    for key, name in (("ih0", names[0]), ("ih1", names[1]), ("dec", names[3])):
        X = torch.cat(xs[key]).double()
        assert torch.allclose(hs[name], X.t() @ X / X.shape[0], atol=1e-5)
    # h_{t-1} of layer 1: its diagonal times N is the activation criterion's square sum
    sums = input_square_sums(m, data)
    n_tokens = sum(b.inputs.numel() for b in data)
    assert torch.allclose(torch.diag(hs[names[2]]).float() * n_tokens, sums[names[2]].reshape(-1), rtol=1e-4)


def test_embedding_and_unknown_names_are_refused():
    m = small_model()
    with pytest.raises(ValueError, match="embeddings and tied weights"):
        collect_hessians(m, batches(1), ["embedding.weight"])


def test_bidirectional_multilayer_user_module():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(17, 8)
            self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, proj_size=4)
            self.out = nn.Linear(8, 5)

        def forward(self, x, state=None):
            y, s = self.lstm(self.emb(x), state)
            return self.out(y), s

    m = Tagger().eval()
    names = [n for n, _ in m.named_parameters() if n.startswith("lstm.weight")] + ["out.weight"]
    hs = collect_hessians(m, batches(2), names)
    assert hs["lstm.weight_ih_l1_reverse"].shape == (8, 8)  # layer 1 input: both directions' projections
    assert hs["lstm.weight_hh_l0"].shape == (4, 4) and hs["lstm.weight_hr_l0"].shape == (6, 6)
    assert all(torch.allclose(h, h.t()) for h in hs.values())


def test_non_finite_inputs_are_named():
    m = small_model()
    with torch.no_grad():
        m.embedding.weight[3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        collect_hessians(m, batches(2), ["rnn.layers.0.weight_ih_l0"])


def test_forward_with_a_required_hidden_argument():
    class WordLM(nn.Module):  # PyTorch's word-LM example: forward(input, hidden), tied weights
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(17, 8)
            self.rnn = nn.LSTM(8, 8, 2)
            self.decoder = nn.Linear(8, 17)
            self.decoder.weight = self.encoder.weight

        def forward(self, input, hidden):
            out, hidden = self.rnn(self.encoder(input), hidden)
            return self.decoder(out), hidden

    hs = collect_hessians(WordLM().eval(), batches(2), ["rnn.weight_hh_l1"], stateful=True)
    assert hs["rnn.weight_hh_l1"].shape == (8, 8)
