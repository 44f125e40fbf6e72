"""Recurrent models written the way users write them (plain nn.Module, torch's own LSTM/GRU),
shared by the tests and benchmarks/user_models_matrix.py, with tiny synthetic tasks so a
brief training gives outputs that mean something."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


class WordLM(nn.Module):
    """PyTorch word-language-model example style: init_hidden, forward(input, hidden)."""

    def __init__(self, cell: str = "LSTM", vocab: int = 50, emb: int = 32, hidden: int = 32, layers: int = 2,
                 tie: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = getattr(nn, cell)(emb, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)
        if tie:
            self.decoder.weight = self.encoder.weight
        self.cell, self.nhid, self.nlayers = cell, hidden, layers

    def init_hidden(self, bsz: int):
        h = torch.zeros(self.nlayers, bsz, self.nhid)
        return (h, h.clone()) if self.cell == "LSTM" else h

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


class HiddenAttrLM(nn.Module):
    """Written the usual way: init_hidden builds the state from self.hidden (an attribute a cut must update)."""

    def __init__(self, vocab=50, emb=16, hidden=32):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, 2)
        self.decoder = nn.Linear(hidden, vocab)
        self.hidden = hidden

    def init_hidden(self, bsz):
        return (torch.zeros(2, bsz, self.hidden), torch.zeros(2, bsz, self.hidden))

    def forward(self, x, hidden=None):
        hidden = self.init_hidden(x.shape[1]) if hidden is None else hidden
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


class Tagger(nn.Module):
    """Bidirectional GRU sequence tagger, batch_first."""

    def __init__(self, vocab: int = 40, tags: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.rnn = nn.GRU(16, 24, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(48, tags)

    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0])


class ConvGRU(nn.Module):
    """1-D convolution front end, GRU, classifier on the last step (sensor data)."""

    def __init__(self, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, 16, 5, padding=2)
        self.rnn = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(32, classes)

    def forward(self, x):  # (B, T, C)
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.head(self.rnn(h)[0][:, -1])


def _lm_batch(g: torch.Generator, vocab: int = 50, T: int = 20, B: int = 8):
    start = torch.randint(0, vocab, (1, B), generator=g)
    seq = (start + 3 * torch.arange(T + 1)[:, None]) % vocab  # next token = token + 3 (mod vocab)
    return seq[:-1], seq[1:]


def _tag_batch(g: torch.Generator, B: int = 8, T: int = 15):
    x = torch.randint(0, 40, (B, T), generator=g)
    return x, (x + torch.roll(x, 1, 1)) % 7  # depends on the left neighbour


def _cls_batch(g: torch.Generator, B: int = 16, T: int = 30):
    y = torch.randint(0, 4, (B,), generator=g)
    t = torch.arange(T)[None, :, None]
    x = torch.sin(t * (0.2 + 0.3 * y[:, None, None]) + torch.rand(B, 1, 3, generator=g)) + 0.1 * torch.randn(B, T, 3, generator=g)
    return x, y


@dataclass
class UserModelSpec:
    make: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], tuple]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def inputs(self, g: torch.Generator):
        return self.batch(g)[0]


def _seq_ce(y, t):
    return F.cross_entropy(y.reshape(-1, y.shape[-1]), t.reshape(-1))


USER_MODELS = {
    "word LM, LSTM": UserModelSpec(lambda: WordLM("LSTM"), _lm_batch, _seq_ce),
    "word LM, LSTM, tied": UserModelSpec(lambda: WordLM("LSTM", tie=True), _lm_batch, _seq_ce),
    "word LM, GRU": UserModelSpec(lambda: WordLM("GRU"), _lm_batch, _seq_ce),
    "word LM, GRU, tied": UserModelSpec(lambda: WordLM("GRU", tie=True), _lm_batch, _seq_ce),
    "bidirectional GRU tagger": UserModelSpec(Tagger, _tag_batch, _seq_ce),
    "CNN + GRU classifier": UserModelSpec(ConvGRU, _cls_batch, F.cross_entropy),
}


def fit(m: nn.Module, spec: UserModelSpec, steps: int, lr: float = 1e-2, seed: int = 0) -> nn.Module:
    """`steps` Adam steps of the user's own loop on the task's batches (stream `seed`)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    m.train()
    for _ in range(steps):
        x, t = spec.batch(g)
        y = m(x)
        loss = spec.loss(y[0] if isinstance(y, tuple) else y, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def train_briefly(spec: UserModelSpec, steps: int = 150, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return fit(spec.make(), spec, steps, seed=seed)
