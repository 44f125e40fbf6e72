"""The reference char models as a plain torch module, for the PyTorch peers (no rnnslim import).

    from peer_common import load_reference
    from torch_char_model import CharRNN, stream_logits, step_latency
    spec, w = load_reference("charlstm-512x2")
    model = CharRNN.from_reference(spec, w)         # nn.Embedding -> nn.LSTM / nn.GRU -> nn.Linear
    logits = stream_logits(model, ids[:-1])         # (T, V) one stream at batch 1, state carried

Written the way a PyTorch user writes the model (sequence-first input (T, B), an nn.LSTM / nn.GRU with
num_layers, a Linear decoder), so that a peer sees what it would see on a user's model. The tensor names
are the safetensors' own (embedding.weight, rnn.weight_ih_l0, ..., decoder.weight), so the state dict
loads strict.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn


class CharRNN(nn.Module):
    def __init__(self, cell: str, vocab: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab, hidden)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(hidden, hidden, num_layers=layers)
        self.decoder = nn.Linear(hidden, vocab)

    @classmethod
    def from_reference(cls, spec: dict, weights: dict[str, np.ndarray]) -> CharRNN:
        m = cls(spec["cell"], len(spec["vocab"]), spec["hidden_size"], spec["num_layers"])
        m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, strict=True)
        return m.eval()

    def forward(self, x: torch.Tensor, state=None):
        """x (T, B) int64 -> logits (T, B, V), new state ((h, c) for LSTM, h for GRU; (layers, B, H) each)."""
        y, state = self.rnn(self.embedding(x), state)
        return self.decoder(y), state


@torch.inference_mode()
def stream_logits(model: nn.Module, x: np.ndarray | torch.Tensor, chunk: int = 1000) -> np.ndarray:
    """Logits (T, V) float32 of one stream x (T,) at batch 1 from the zero state, the state carried across
    chunks of `chunk` steps (the same numbers as one long call, in bounded memory)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.long).reshape(-1, 1)
    out, state = [], None
    for s in range(0, len(x), chunk):
        logits, state = model(x[s : s + chunk], state)
        out.append(logits[:, 0].float())
    return torch.cat(out).numpy()


@torch.inference_mode()
def step_latency(step_fn, vocab: int, steps: int = 200, repeats: int = 5, warmup: int = 50) -> dict:
    """Streaming step latency at batch 1: `step_fn(token_tensor (1, 1) int64)` runs one step (carrying its own
    state); median over `repeats` rounds of `steps` steps after `warmup` (as rnnslim.measure.streaming_latency).
    Run with torch.set_num_threads(1) for the 1-thread figures."""
    tokens = torch.randint(0, vocab, (256, 1, 1), generator=torch.Generator().manual_seed(0))
    i = 0
    for _ in range(warmup):
        step_fn(tokens[i % 256])
        i += 1
    medians = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step_fn(tokens[i % 256])
            i += 1
        medians.append((time.perf_counter() - t0) / steps * 1e3)
    return {"median_ms": float(np.median(medians)), "spread_ms": [min(medians), max(medians)],
            "load_avg": list(os.getloadavg()), "threads": torch.get_num_threads(),
            "how": f"median of {repeats} rounds x {steps} steps after {warmup} warm-up, batch 1, state carried"}


def module_stepper(model: nn.Module):
    """A step_fn for step_latency over a module with CharRNN's call signature (x (1, 1), state)."""
    state = None

    def step(tok: torch.Tensor) -> torch.Tensor:
        nonlocal state
        logits, state = model(tok, state)
        return logits
    return step
