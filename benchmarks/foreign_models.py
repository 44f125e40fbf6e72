"""Recurrent models written exactly as users write them, for benchmarks/your_model_to_device.py.

Plain nn.Modules on torch's own nn.LSTM / nn.GRU, nothing from rnnslim: the point of the
benchmark is that rnnslim takes a model it did not write. word_lm is the PyTorch examples'
word_language_model (the copy in tests/capture/user_modules.py, plus the examples' init):
forward(input, hidden), init_hidden from next(self.parameters()), log_softmax over
decoded.view(-1, ntoken); the others are the usual batch_first shapes of a
keyword spotter, a CRNN, a sensor classifier and a bidirectional tagger. The Keras model is
built by `keras_lstm_classifier` (Keras 3, imported lazily: keras is an optional extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "capture"))
from user_modules import ExamplesWordLM  # noqa: E402  (the examples' word LM, as tests/capture has it)


def word_lm(ntoken: int, ninp: int, nhid: int, nlayers: int, tie_weights: bool = False) -> nn.Module:
    """The PyTorch examples' RNNModel("LSTM", ...) (shared with tests/capture/user_modules.py)
    with the examples' init_weights (uniform +-0.1 embedding and decoder, zero decoder bias)."""
    model = ExamplesWordLM("LSTM", ntoken, ninp, nhid, nlayers, dropout=0.2, tie_weights=tie_weights)
    nn.init.uniform_(model.encoder.weight, -0.1, 0.1)
    nn.init.zeros_(model.decoder.bias)
    nn.init.uniform_(model.decoder.weight, -0.1, 0.1)
    return model


class KeywordGRU(nn.Module):
    """Keyword-spotting shape: frames of spectral features (B, T, F) -> GRU -> Linear on the last step."""

    def __init__(self, n_features: int = 12, hidden: int = 64, n_classes: int = 9) -> None:
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1, :])


class CRNN(nn.Module):
    """Conv1d front end over time, ReLU, GRU, Linear on the last step; x (B, T, C)."""

    def __init__(self, channels: int = 6, conv: int = 16, hidden: int = 32, n_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, conv, kernel_size=5, padding=2)
        self.gru = nn.GRU(conv, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x):
        h = F.relu(self.conv(x.permute(0, 2, 1))).permute(0, 2, 1)  # (B, T, conv)
        out, _ = self.gru(h)
        return self.fc(out[:, -1])


class SensorLSTM(nn.Module):
    """Motion channels (B, T, 6) -> LSTM -> Linear on the last step."""

    def __init__(self, channels: int = 6, hidden: int = 32, n_classes: int = 4) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1])


class BoundaryTagger(nn.Module):
    """Bidirectional GRU tagger over characters (B, T) -> tag logits per character (B, T, tags)."""

    def __init__(self, vocab: int, emb: int = 16, hidden: int = 48, tags: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)


class LSTMClassifier(nn.Module):
    """The torch model a user exports to ONNX: (B, T, F) -> LSTM -> Linear on the last step."""

    def __init__(self, n_features: int = 12, hidden: int = 48, n_classes: int = 9) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, n_classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.linear(out[:, -1, :])


def keras_lstm_classifier(steps: int, n_features: int, n_classes: int, hidden: int = 32):
    """Keras Sequential: Input (T, F) -> LSTM -> Dense logits (the user's keras.Sequential)."""
    import keras

    return keras.Sequential([keras.Input(shape=(steps, n_features)), keras.layers.LSTM(hidden),
                             keras.layers.Dense(n_classes)])

