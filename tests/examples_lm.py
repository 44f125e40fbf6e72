"""The user's side of the PyTorch examples word language model (the model itself is
capture/user_modules.py's ExamplesWordLM: `init_hidden` asks the model for its dtype and
device with `next(self.parameters())` and sizes the state from `self.nlayers` /
`self.nhid`): its batchified corpus, its evaluate() loop that carries the hidden state
from batch to batch, and a brief training. Tests run this loop after rnnslim edits the model."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tests.capture.user_modules import ExamplesWordLM  # noqa: F401  (re-exported for the tests; one module name)


def corpus(n: int = 241, vocab: int = 30, seed: int = 0) -> torch.Tensor:
    """A token stream with structure (next token = token + 3 mod vocab, with some noise), batchified
    the examples' way: (n // bsz, bsz)."""
    g = torch.Generator().manual_seed(seed)
    ids = (torch.arange(n) * 3 + torch.randint(0, 2, (n,), generator=g)) % vocab
    return ids[: n // 4 * 4].view(4, -1).t().contiguous()  # (T, 4)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def evaluate(model: nn.Module, data: torch.Tensor, bptt: int = 10) -> float:
    """The examples' evaluate(): mean next-token loss over `data` (T, B), state carried."""
    model.eval()
    total = 0.0
    hidden = model.init_hidden(data.size(1))
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            seq_len = min(bptt, data.size(0) - 1 - i)
            x, y = data[i:i + seq_len], data[i + 1:i + 1 + seq_len].reshape(-1)
            output, hidden = model(x, hidden)
            hidden = repackage_hidden(hidden)
            total += seq_len * F.nll_loss(output, y).item()
    return total / (data.size(0) - 1)


def train_briefly(model: nn.Module, data: torch.Tensor, steps: int = 60, bptt: int = 10, lr: float = 5.0) -> nn.Module:
    """Plain SGD steps written out (creating a torch.optim optimizer costs seconds of imports once)."""
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        i = (step * bptt) % (data.size(0) - 1 - bptt)
        output, _ = model(data[i:i + bptt], model.init_hidden(data.size(1)))
        loss = F.nll_loss(output, data[i + 1:i + 1 + bptt].reshape(-1))
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model.eval()
