"""The kernel's delta step in torch integers: the bit-exact reference tests hold the C to.

    logits, counters = delta_reference(model, tokens)            # the model's thresholds
    logits, counters = delta_reference(model, feats, delta=4)    # or an override (delta.py)

Runs one stream from the zero state (batch 1), step by step, with the arithmetic of
delta.py's module docstring on the integer layers' own tensors (integer_cells.py for the
cells, the decoder's forward_int for the logits), and returns the logits (T, O) and the
counters in the layout of the C delta state's head ([steps, 0, (kept W_ih columns, kept
W_hh columns) per layer]; delta.delta_stats_of turns them into DeltaStats).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnslim.models.sequence import InputKind
from rnnslim.quantize.int8.delta import Thresholds, delta_thresholds, integer_layers, resolve_thresholds
from rnnslim.quantize.int8.fixedpoint import quantize_q8
from rnnslim.quantize.int8.integer_cells import _matmul, _term, gru_step, h8_of, lstm_step, rnn_step
from rnnslim.recurrent.gates import CellType


class _DeltaMatrix:
    """last transmitted codes and M = W last (int64) of one matrix"""

    def __init__(self, w: Tensor, thr: int) -> None:
        self.w, self.thr = w.to(torch.int64), thr
        self.last = torch.zeros(w.shape[1], dtype=torch.int64)
        self.acc = torch.zeros(w.shape[0], dtype=torch.int64)

    def update(self, x: Tensor) -> int:
        d = x - self.last
        keep = d.abs() >= self.thr
        self.acc += self.w[:, keep] @ d[keep]
        self.last[keep] = x[keep]
        return int(keep.sum())


@torch.no_grad()
def delta_reference(model, x: Tensor, delta: Thresholds | str = "model") -> tuple[Tensor, np.ndarray]:
    """x: token ids (T,) or features (T, F) -> (logits (T, O) float32, int64 counters)."""
    layers = integer_layers(model)
    thr = delta_thresholds(model) if delta == "model" else resolve_thresholds(len(layers), delta)
    tokens = model.spec.input_kind is InputKind.EMBEDDING
    if tokens:
        x8 = model.embedding.weight[x.reshape(-1)].to(torch.int64)  # (T, E) codes
    else:
        enc = model.encode(x.reshape(x.shape[0], 1, -1).float())[:, 0]
        x8 = quantize_q8(enc, layers[0].x_scale).to(torch.int64)
    counters = np.zeros(2 + 2 * len(layers), dtype=np.int64)
    dx, dh, states = [], [], []
    for k, (layer, t) in enumerate(zip(layers, thr)):
        d = layer.direction(0)
        dx.append(_DeltaMatrix(d.w_ih, t) if t is not None and (k > 0 or not tokens) else None)
        dh.append(_DeltaMatrix(d.w_hh, t) if t is not None else None)
        states.append(layer.state_to_int(None, 1, torch.device("cpu"))[0])
    dec = model.decoder
    out = []
    for step in range(x8.shape[0]):
        counters[0] += 1
        inp = x8[step: step + 1]  # (1, I)
        for k, layer in enumerate(layers):
            d, lp = layer.direction(0), layer.layer_params()
            if dx[k] is not None:
                counters[2 + 2 * k] += dx[k].update(inp[0])
                tx = _term(dx[k].acc[None], d.mult_ih, d.shift_ih)
            else:
                tx = _term(_matmul(inp, d.w_ih), d.mult_ih, d.shift_ih)
            st = states[k]
            h8 = st[0] if layer.cell is CellType.LSTM else h8_of(st, lp)
            th = None
            if dh[k] is not None:
                counters[3 + 2 * k] += dh[k].update(h8[0].to(torch.int64))
                th = _term(dh[k].acc[None], d.mult_hh, d.shift_hh)
            if layer.cell is CellType.LSTM:
                states[k] = lstm_step(tx, st[0], st[1], d, lp, th)
                inp = states[k][0]
            else:
                states[k] = (gru_step if layer.cell is CellType.GRU else rnn_step)(tx, st, d, lp, th)
                inp = h8_of(states[k], lp)
        out.append(dec.forward_int(inp).float() * dec.out_scale)
    logits = torch.cat(out) if out else torch.zeros(0, dec.out_features)
    return logits, counters
