"""Unfused reference cells built from explicit matrix products.

These are the ground truth for numerics elsewhere (quantized cells, integer reference,
pruned layers): `reference_forward(module, x, hx)` equals `module(x, hx)` for
torch.nn.LSTM / GRU / RNN to float32 rounding, including multi-layer, bidirectional,
batch_first, given initial states and LSTM `proj_size`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnslim.recurrent.gates import CellType, cell_of_module


@dataclass
class DirectionWeights:
    """Weights of one direction of one layer, PyTorch packed layout (see gates.py).

    w_ih: (G*H, I), w_hh: (G*H, P) with P = proj_size or H, b_ih/b_hh: (G*H,) or None,
    w_hr: (P, H) or None (LSTM projection).
    """

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None
    w_hr: Tensor | None = None


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = x @ w.t()
    return y + b if b is not None else y


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w: DirectionWeights) -> tuple[Tensor, Tensor]:
    """One LSTM step. x: (B, I), h: (B, P), c: (B, H) -> (h', c')."""
    gates = _linear(x, w.w_ih, w.b_ih) + _linear(h, w.w_hh, w.b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    if w.w_hr is not None:
        h_new = h_new @ w.w_hr.t()  # (B, H) -> (B, P)
    return h_new, c_new


def gru_cell(x: Tensor, h: Tensor, w: DirectionWeights) -> Tensor:
    """One GRU step. x: (B, I), h: (B, H) -> h'. The reset gate scales W_hn h + b_hn."""
    gi = _linear(x, w.w_ih, w.b_ih)  # (B, 3H)
    gh = _linear(h, w.w_hh, w.b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


def rnn_cell(x: Tensor, h: Tensor, w: DirectionWeights, relu: bool = False) -> Tensor:
    """One Elman RNN step. x: (B, I), h: (B, H) -> h'."""
    pre = _linear(x, w.w_ih, w.b_ih) + _linear(h, w.w_hh, w.b_hh)
    return torch.relu(pre) if relu else torch.tanh(pre)


def direction_weights(module: torch.nn.RNNBase, layer: int, reverse: bool) -> DirectionWeights:
    """Read the weights of (layer, direction) from a torch.nn.LSTM/GRU/RNN."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    get = lambda name: getattr(module, name + sfx, None)  # noqa: E731
    return DirectionWeights(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr"))


def run_direction(
    cell: CellType, w: DirectionWeights, x: Tensor, state: tuple[Tensor, Tensor] | Tensor, reverse: bool
) -> tuple[Tensor, tuple[Tensor, Tensor] | Tensor]:
    """Run one direction over a sequence. x: (T, B, I). Returns (outputs (T, B, P), state)."""
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outs: list[Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
    for t in steps:
        if cell is CellType.LSTM:
            h, c = lstm_cell(x[t], state[0], state[1], w)
            state = (h, c)
        elif cell is CellType.GRU:
            h = state = gru_cell(x[t], state, w)
        else:
            h = state = rnn_cell(x[t], state, w, relu=cell is CellType.RNN_RELU)
        outs[t] = h
    return torch.stack(outs, 0), state


def reference_forward(module: torch.nn.RNNBase, x: Tensor, hx=None):
    """Explicit-matmul equivalent of `module(x, hx)` for nn.LSTM / nn.GRU / nn.RNN.

    Shapes follow torch: x (T, B, I) or (B, T, I) with batch_first; hx (L*D, B, P) or,
    for LSTM, a tuple (h0 (L*D, B, P), c0 (L*D, B, H)). Unbatched input is not handled.
    """
    cell = cell_of_module(module)
    if module.batch_first:
        x = x.transpose(0, 1)
    T, B, _ = x.shape
    D = 2 if module.bidirectional else 1
    L, H = module.num_layers, module.hidden_size
    P = getattr(module, "proj_size", 0) or H
    zeros = lambda n: x.new_zeros(L * D, B, n)  # noqa: E731
    if cell is CellType.LSTM:
        h0, c0 = hx if hx is not None else (zeros(P), zeros(H))
    else:
        h0 = hx if hx is not None else zeros(H)
    h_out, c_out = [], []
    layer_in = x
    for layer in range(L):
        dir_outs = []
        for d in range(D):
            k = layer * D + d
            st = (h0[k], c0[k]) if cell is CellType.LSTM else h0[k]
            y, st = run_direction(cell, direction_weights(module, layer, d == 1), layer_in, st, reverse=d == 1)
            dir_outs.append(y)
            if cell is CellType.LSTM:
                h_out.append(st[0])
                c_out.append(st[1])
            else:
                h_out.append(st)
        layer_in = torch.cat(dir_outs, dim=2) if D == 2 else dir_outs[0]
        # inter-layer dropout only applies in training; the reference is for eval numerics
    out = layer_in.transpose(0, 1) if module.batch_first else layer_in
    hn = torch.stack(h_out, 0)
    if cell is CellType.LSTM:
        return out, (hn, torch.stack(c_out, 0))
    return out, hn
