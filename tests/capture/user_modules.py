"""Small user modules of the shapes people bring to rnnslim.capture (tests only): the PyTorch
examples word LM, a keyword-spotting GRU, a sensor LSTM with BatchNorm on its inputs, chained
LSTMs, an LSTMP, a CRNN (Conv1d front end) and a module that capture must refuse (a residual add)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ExamplesWordLM(nn.Module):
    """pytorch/examples word_language_model: forward(input, hidden), log_softmax over view(-1, ntoken)."""

    def __init__(self, rnn_type: str = "LSTM", ntoken: int = 30, ninp: int = 12, nhid: int = 12, nlayers: int = 2,
                 dropout: float = 0.2, tie_weights: bool = False) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


class KeywordGRU(nn.Module):
    """Keyword spotting: (B, T, 13) MFCC frames -> GRU -> Linear on the last step."""

    def __init__(self, features: int = 13, hidden: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1])


class SensorLSTM(nn.Module):
    """Motion channels (B, T, C) -> BatchNorm1d over the channels -> LSTM -> Linear on h_n[-1]."""

    def __init__(self, channels: int = 6, hidden: int = 10, classes: int = 4) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)
        self.lstm = nn.LSTM(channels, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


class TwoLSTMs(nn.Module):
    """Two chained nn.LSTM of different sizes with dropout between, time major, mean over time."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 8)
        self.first = nn.LSTM(8, 12)
        self.drop = nn.Dropout(0.3)
        self.second = nn.LSTM(12, 6, bidirectional=True)
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.first(self.proj(x))
        y, _ = self.second(self.drop(y))
        return self.out(y.mean(0))


class ProjectedLSTM(nn.Module):
    """An LSTMP (proj_size) tagger over features, softmax output, batch first."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 10, num_layers=2, proj_size=6, batch_first=True)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return torch.softmax(self.out(self.rnn(x)[0]), dim=-1)


class TinyGRU(nn.Module):
    """3 features -> GRU 4 (batch first) -> Linear 2 on the last step: the smallest capturable classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1])


class ResidualLSTM(nn.Module):
    """Refused: adds the input features to the LSTM output."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.out(y + x)


class ConvFrontGRU(nn.Module):
    """A CRNN: a kernel-5 Conv1d front end (padding 2) over time, then a GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 8, 5, padding=2)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.head(self.rnn(h)[0][:, -1])


class SelfInitLM(nn.Module):
    """Batch-first LM that builds its own zero state with init_hidden (next(self.parameters()))
    when forward gets hidden=None."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.rnn = nn.LSTM(8, 8, 2, batch_first=True)
        self.fc = nn.Linear(8, 20)
        self.nlayers, self.nhid = 2, 8

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid)

    def forward(self, x, hidden=None):
        if hidden is None:
            hidden = self.init_hidden(x.size(0))
        out, hidden = self.rnn(self.emb(x), hidden)
        return self.fc(out), hidden
