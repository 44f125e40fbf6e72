"""Pure-integer LSTM / GRU / RNN cells: the reference that kernel.c matches bit for bit.

All tensors are integer (int32 matmuls, int64 elsewhere so nothing can wrap); there is no
float anywhere in a step. Building blocks (requant, rshr, lut, sat) and formats are in
fixedpoint.py. Per direction of a layer with G gates, hidden size H, input size I:

    w_ih int8 (G*H, I), w_hh int8 (G*H, H)      symmetric, one scale per gate row
    mult_ih/shift_ih, mult_hh/shift_hh          per row: s_x * s_w_ih[row] * 2^12 (resp.
                                                s_h * s_w_hh[row] * 2^12) as (M, n)
    bias int32 Q.12                             LSTM [i|f|g|o] = b_ih + b_hh (4H)
                                                GRU  [r|z|n_x|n_h] = [b_ir+b_hr, b_iz+b_hz, b_in, b_hn] (4H)
                                                RNN  b_ih + b_hh (H)
and per layer: h_mult/h_shift (int8 output requantization, see below), cf (LSTM cell
state fraction bits), the sigmoid and tanh tables.

One step, x8 the int8 input codes (scale s_x), every sum below in int32 unless noted:

    tx = sat(requant(W_ih x8, mult_ih, shift_ih), -2^24, 2^24)    # Q.12 per gate row
    th = sat(requant(W_hh h8, mult_hh, shift_hh), -2^24, 2^24)

LSTM (state h8 int8 with scale s_h, c int16 Q.cf):
    i, f, o = sig(tx + th + b)[gates i, f, o];  g = tanh(tx + th + b)[gate g]   # Q0.15
    c'  = sat(rshr(f * c, 15) + rshr(i * g, 30 - cf), -32768, 32767)
    c12 = cf >= 12 ? rshr(c', cf - 12) : c' << (12 - cf)
    h8' = sat(requant(o * tanh(c12), h_mult, h_shift), -127, 127)   # o*tanh is Q0.30,
                                                                    # h_mult ~ 2^-30 / s_h
GRU (state h16 int16 Q0.15; its int8 copy h8 = sat(requant(h16, h_mult, h_shift), -127, 127),
     h_mult ~ 2^-15 / s_h, feeds W_hh and the next layer):
    r  = sig(tx_r + th_r + b_r);  z = sig(tx_z + th_z + b_z)
    n  = tanh(tx_n + b_in + rshr(r * (th_n + b_hn), 15))     # r * (...) in int64
    h16' = sat(n + rshr(z * (h16 - n), 15), -32767, 32767)
RNN (tanh; state h16 as for GRU):
    h16' = tanh(tx + th + b)

The layer output (input of the next layer) is h8' with scale s_h; the next layer's s_x is
that same s_h, so layers chain without any float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnslim.quantize.int8.fixedpoint import (
    GATE_FRAC,
    INT16_MAX,
    PRE_FRAC,
    PRE_SAT,
    Q8_MAX,
    lut,
    requant,
    rshr,
    sat,
)
from rnnslim.recurrent.gates import CellType


@dataclass
class IntDirection:
    """Integer weights of one direction (see the module docstring for meanings)."""

    w_ih: Tensor  # int8 (G*H, I)
    w_hh: Tensor  # int8 (G*H, H)
    mult_ih: Tensor  # int32 (G*H,)
    shift_ih: Tensor  # int8 (G*H,)
    mult_hh: Tensor
    shift_hh: Tensor
    bias: Tensor  # int32, (4H,) LSTM/GRU or (H,) RNN


@dataclass
class IntLayer:
    """Per-layer constants shared by both directions."""

    cell: CellType
    h_mult: Tensor  # int32 scalar
    h_shift: Tensor  # int8 scalar
    cell_frac: int  # LSTM cell state Q.cf
    sig: Tensor  # int16 (LUT_SIZE,)
    tanh: Tensor  # int16 (LUT_SIZE,)


def _matmul(x: Tensor, w: Tensor) -> Tensor:
    """int32 codes (..., K) @ int8 weights (N, K)^T -> exact int32 (..., N)."""
    return torch.matmul(x.to(torch.int32), w.to(torch.int32).t())


def _term(acc: Tensor, mult: Tensor, shift: Tensor) -> Tensor:
    return sat(requant(acc, mult, shift), -PRE_SAT, PRE_SAT)


def to_q12(c: Tensor, cf: int) -> Tensor:
    """Cell state Q.cf -> Q.12 (exact when cf <= 12, rounded otherwise)."""
    return rshr(c, cf - PRE_FRAC) if cf >= PRE_FRAC else c << (PRE_FRAC - cf)


def h8_of(h16: Tensor, lp: IntLayer) -> Tensor:
    """int8 codes of a Q0.15 hidden state (GRU / RNN)."""
    return sat(requant(h16, lp.h_mult, lp.h_shift), -Q8_MAX, Q8_MAX)


def lstm_step(tx: Tensor, h8: Tensor, c: Tensor, p: IntDirection, lp: IntLayer,
              th: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """tx (B, 4H) Q.12, h8 (B, H) int8 codes, c (B, H) Q.cf -> (h8', c'). `th`: the recurrent
    terms when the caller computed them (the delta step), else requant(W_hh h8)."""
    th = _term(_matmul(h8, p.w_hh), p.mult_hh, p.shift_hh) if th is None else th
    pre = tx + th + p.bias.to(torch.int64)
    i, f, g, o = pre.chunk(4, dim=-1)
    i, f, o, g = lut(lp.sig, i), lut(lp.sig, f), lut(lp.sig, o), lut(lp.tanh, g)
    c = sat(rshr(f * c, GATE_FRAC) + rshr(i * g, 2 * GATE_FRAC - lp.cell_frac), -INT16_MAX - 1, INT16_MAX)
    h = o * lut(lp.tanh, to_q12(c, lp.cell_frac))  # Q0.30
    return sat(requant(h, lp.h_mult, lp.h_shift), -Q8_MAX, Q8_MAX), c


def gru_step(tx: Tensor, h16: Tensor, p: IntDirection, lp: IntLayer, th: Tensor | None = None) -> Tensor:
    """tx (B, 3H) Q.12, h16 (B, H) Q0.15 -> h16' (`th` as for lstm_step)."""
    th = _term(_matmul(h8_of(h16, lp), p.w_hh), p.mult_hh, p.shift_hh) if th is None else th
    tx_r, tx_z, tx_n = tx.chunk(3, dim=-1)
    th_r, th_z, th_n = th.chunk(3, dim=-1)
    b_r, b_z, b_in, b_hn = p.bias.to(torch.int64).chunk(4)
    r = lut(lp.sig, tx_r + th_r + b_r)
    z = lut(lp.sig, tx_z + th_z + b_z)
    n = lut(lp.tanh, tx_n + b_in + rshr(r * (th_n + b_hn), GATE_FRAC))
    return sat(n + rshr(z * (h16 - n), GATE_FRAC), -INT16_MAX, INT16_MAX)


def rnn_step(tx: Tensor, h16: Tensor, p: IntDirection, lp: IntLayer, th: Tensor | None = None) -> Tensor:
    """tx (B, H) Q.12, h16 (B, H) Q0.15 -> h16' (tanh RNN; `th` as for lstm_step)."""
    th = _term(_matmul(h8_of(h16, lp), p.w_hh), p.mult_hh, p.shift_hh) if th is None else th
    return lut(lp.tanh, tx + th + p.bias.to(torch.int64))


class DeltaMatrix:
    """The delta step of one matrix (delta.py), batched: per row of the batch the last transmitted
    codes `last` (B, K) and the accumulators `acc` = last @ W^T (B, N), from the zero state.
    update(x) transmits the columns with |x - last| >= thr and returns their count (summed over B)."""

    def __init__(self, w: Tensor, thr: int, batch: int) -> None:
        self.w, self.thr = w, thr
        self.last = torch.zeros(batch, w.shape[1], dtype=torch.int64, device=w.device)
        self.acc = torch.zeros(batch, w.shape[0], dtype=torch.int64, device=w.device)

    def update(self, x: Tensor) -> int:
        d = x.to(torch.int64) - self.last
        keep = d.abs() >= self.thr
        self.acc += _matmul(d * keep, self.w)  # |d| <= 254: the int32 product is exact
        self.last = torch.where(keep, x.to(torch.int64), self.last)
        return int(keep.sum())


def run_direction(x8: Tensor, state, p: IntDirection, lp: IntLayer, reverse: bool,
                  delta: tuple[int, bool] | None = None, counts: list[int] | None = None):
    """x8 (T, B, I) int codes; state LSTM (h8, c) or GRU/RNN h16, each (B, H) int64.

    Returns (y8 (T, B, H) int64 output codes, final state). The input projection of the
    whole sequence is one int32 matmul (each row is still exact and independent).
    `delta` (threshold, W_ih too): the delta step (delta.py) from the zero delta state, the
    kept columns of W_ih and W_hh added to counts[0] and counts[1].
    """
    T, B = x8.shape[0], x8.shape[1]
    dx = dh = None
    if delta is not None:
        dh = DeltaMatrix(p.w_hh, delta[0], B)
        dx = DeltaMatrix(p.w_ih, delta[0], B) if delta[1] else None
        counts = counts if counts is not None else [0, 0]
    tx_all = None if dx is not None else _term(_matmul(x8, p.w_ih), p.mult_ih, p.shift_ih)  # (T, B, G*H)
    outs: list[Tensor] = [None] * T  # type: ignore[list-item]
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        tx = tx_all[t] if dx is None else None
        if dx is not None:
            counts[0] += dx.update(x8[t])
            tx = _term(dx.acc, p.mult_ih, p.shift_ih)
        th = None
        if dh is not None:
            counts[1] += dh.update(state[0] if lp.cell is CellType.LSTM else h8_of(state, lp))
            th = _term(dh.acc, p.mult_hh, p.shift_hh)
        if lp.cell is CellType.LSTM:
            h8, c = lstm_step(tx, state[0], state[1], p, lp, th)
            state = (h8, c)
            outs[t] = h8
        else:
            step = gru_step if lp.cell is CellType.GRU else rnn_step
            state = step(tx, state, p, lp, th)
            outs[t] = h8_of(state, lp)
    if T == 0:
        return x8.new_zeros(0, x8.shape[1], p.w_hh.shape[1], dtype=torch.int64), state
    return torch.stack(outs, 0), state
