"""Fully integer layers: the reference implementation of the microcontroller path.

IntegerRecurrent holds one layer (1 or 2 directions) in the formats of integer_cells.py
(int8 weights, int32 multipliers and Q.12 biases, int16 lookup tables) and runs the pure
integer cells. To fit the float SequenceModel contract it takes and returns floats at its
boundary only: the input is rounded once to int8 codes with `x_scale`, and outputs and
states leave as exactly representable floats (h8 * s_h, c * 2^-cf, h16 * 2^-15). Because
each layer's x_scale is the previous layer's h_scale, that round trip is exact and a stack
of integer layers computes the same integers as one fused integer program (kernel.c).

IntegerEmbedding stores the table in int8 with one per-tensor scale (its codes are the
first layer's input codes). A tied model's decoder shares that table (IntegerLinear.tied_to:
the same tensor, every row scaled by the per-tensor scale), so it exists once in memory, in
model files (io/tied.py) and in the C export (packed.py). IntegerLinear computes int32 accumulators and either
dequantizes them per row (decoder: float logits = float32(acc) * float32(s_in * s_w[row]))
or requantizes them to int8 codes (an input projection feeding the first layer).
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
import torch
from torch import Tensor, nn

from rnnslim.quantize.anchor import DtypeAnchored
from rnnslim.quantize.int8.fixedpoint import (
    GATE_FRAC,
    INT16_MAX,
    PRE_FRAC,
    Q8_MAX,
    q12_from_real,
    quantize_multiplier,
    quantize_q8,
    requant,
    sat,
    sigmoid_table,
    tanh_table,
)
from rnnslim.quantize.int8.integer_cells import IntDirection, IntLayer, run_direction
from rnnslim.quantize.int8.qweights import quantize_rows
from rnnslim.recurrent.cells import direction_weights
from rnnslim.recurrent.gates import CellType, as_cell, cell_of_module, gate_count

def check_delta_threshold(threshold: int | None, bidirectional: bool) -> int | None:
    """A layer's delta threshold (int8 code units, >= 0) or None; a clear error otherwise."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or not 0 <= threshold <= 255:
        raise ValueError(f"a delta threshold is an integer in [0, 255] (int8 code units), got {threshold!r}")
    if bidirectional:
        raise ValueError("the delta step is a streaming step; a bidirectional layer has none (no delta threshold)")
    return int(threshold)


SUPPORTED_CELLS = (CellType.LSTM, CellType.GRU, CellType.RNN_TANH)
BIAS_MAX = 1 << 30  # int32 biases of Linear layers are clamped here so acc + bias cannot wrap


def _check_cell(cell: CellType) -> CellType:
    if cell not in SUPPORTED_CELLS:
        raise ValueError(f"the integer int8 path supports {[c.value for c in SUPPORTED_CELLS]}, not {cell.value!r} "
                         "(a ReLU RNN has an unbounded state; use the dynamic or static int8 mode)")
    return cell


def _mult(real: np.ndarray) -> tuple[Tensor, Tensor]:
    m, n = quantize_multiplier(real)
    return torch.from_numpy(m), torch.from_numpy(n)


def act_scale(amax: float) -> float:
    """Symmetric int8 scale of a calibrated magnitude, as float32 (a zero range gets 1/127)."""
    return float(np.float32((amax if amax > 0 else 1.0) / Q8_MAX))


def cell_frac_bits(c_amax: float, headroom: float) -> int:
    """Fraction bits of the int16 cell state that cover headroom * c_amax (Q(15-cf).cf)."""
    need = headroom * c_amax
    int_bits = max(0, math.ceil(math.log2(need))) if need > 0 else 0
    if int_bits > 15:
        raise ValueError(f"LSTM cell state reaches {c_amax:.3g}; an int16 cell state cannot hold it")
    return 15 - int_bits


class IntegerRecurrent(DtypeAnchored):
    """One LSTM / GRU / tanh-RNN layer in pure integer arithmetic (see integer_cells.py)."""

    rnnslim_kind = "int8_integer_recurrent"

    def __init__(self, cell: CellType | str, input_size: int, hidden_size: int, bidirectional: bool = False,
                 batch_first: bool = False, cell_frac: int = 10, delta_threshold: int | None = None,
                 delta_input: bool = True) -> None:
        super().__init__()
        self.cell = _check_cell(as_cell(cell))
        if not 0 <= cell_frac <= 15:
            raise ValueError(f"cell_frac must be in [0, 15], got {cell_frac}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional, self.batch_first, self.cell_frac = bidirectional, batch_first, cell_frac
        # the delta step (delta.py; None: dense), on W_hh and, if delta_input, on W_ih too
        self.delta_threshold = check_delta_threshold(delta_threshold, bidirectional)
        self.delta_input = bool(delta_input)
        self.delta_counts = [0, 0]  # kept W_ih / W_hh columns of the last forward (delta layers)
        G, H = gate_count(self.cell), hidden_size
        nb = 4 * H if self.cell in (CellType.LSTM, CellType.GRU) else H
        for sfx in self._suffixes():
            self.register_buffer("w_ih" + sfx, torch.zeros(G * H, input_size, dtype=torch.int8))
            self.register_buffer("w_hh" + sfx, torch.zeros(G * H, H, dtype=torch.int8))
            for name in ("ih", "hh"):
                self.register_buffer(f"w_{name}_scale{sfx}", torch.ones(G * H))
                # derived from the scales (derive_multipliers_), not stored: see DERIVED_BUFFERS
                self.register_buffer(f"mult_{name}{sfx}", torch.full((G * H,), 1 << 30, dtype=torch.int32),
                                     persistent=False)
                self.register_buffer(f"shift_{name}{sfx}", torch.full((G * H,), 31, dtype=torch.int8),
                                     persistent=False)
            self.register_buffer("bias" + sfx, torch.zeros(nb, dtype=torch.int32))
        self.register_buffer("x_scale", torch.ones(1))
        self.register_buffer("h_scale", torch.ones(1))
        self.register_buffer("h_mult", torch.full((1,), 1 << 30, dtype=torch.int32), persistent=False)
        self.register_buffer("h_shift", torch.full((1,), 31, dtype=torch.int8), persistent=False)
        self.register_buffer("sig_lut", sigmoid_table(), persistent=False)  # constants: not stored per layer
        self.register_buffer("tanh_lut", tanh_table(), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.derive_multipliers_())

    def derived_buffers(self) -> dict[str, Tensor]:
        """Buffers computed from the stored ones (not written to model files; older files that
        hold them load when they equal these): the lookup tables and the per-row multipliers."""
        names = ["sig_lut", "tanh_lut", "h_mult", "h_shift"] + [
            f"{k}_{n}{sfx}" for sfx in self._suffixes() for n in ("ih", "hh") for k in ("mult", "shift")]
        return {n: getattr(self, n) for n in names}

    @torch.no_grad()
    def derive_multipliers_(self) -> None:
        """mult/shift per gate row = quantize_multiplier(s_in * s_w[row] * 2^PRE_FRAC), s_in the
        float32 input scale (x_scale for W_ih, h_scale for W_hh): the integer requantization;
        h_mult/h_shift: LSTM h8 = (o * tanh(c)) [Q0.30] / s_h, GRU/RNN h8 = h16 [Q0.15] / s_h."""
        frac = 2 * GATE_FRAC if self.cell is CellType.LSTM else GATE_FRAC
        m, n = _mult(np.array([2.0**-frac / float(self.h_scale)]))
        self.h_mult.copy_(m)
        self.h_shift.copy_(n)
        for sfx in self._suffixes():
            for name, s_in in (("ih", self.x_scale), ("hh", self.h_scale)):
                scale = getattr(self, f"w_{name}_scale{sfx}")
                m, n = _mult(float(s_in) * scale.detach().cpu().double().numpy() * 2.0**PRE_FRAC)
                getattr(self, f"mult_{name}{sfx}").copy_(m)
                getattr(self, f"shift_{name}{sfx}").copy_(n)

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def rnnslim_config(self) -> dict:
        cfg = {"cell": self.cell.value, "input_size": self.input_size, "hidden_size": self.hidden_size,
               "bidirectional": self.bidirectional, "batch_first": self.batch_first, "cell_frac": self.cell_frac}
        if self.delta_threshold is None:
            return cfg
        return cfg | {"delta_threshold": self.delta_threshold, "delta_input": self.delta_input}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.rnnslim_config().items())

    # --- conversion ---------------------------------------------------------------------
    @classmethod
    def from_float(cls, layer: nn.RNNBase, x_scale: float, h_amax: float = 1.0,
                   cell_frac: int = 10) -> IntegerRecurrent:
        """Quantize a single-layer torch module; x_scale is the (float32) scale of its int8 input codes."""
        cell = _check_cell(cell_of_module(layer))
        if layer.num_layers != 1:
            raise ValueError(f"expected a single-layer module, got num_layers={layer.num_layers}")
        if getattr(layer, "proj_size", 0):
            raise ValueError("the integer int8 path does not support LSTM proj_size; use the dynamic or static "
                             "mode, or fold the projection first")
        q = cls(cell, layer.input_size, layer.hidden_size, layer.bidirectional, layer.batch_first, cell_frac)
        H = layer.hidden_size
        s_x, s_h = np.float32(x_scale), np.float32(act_scale(h_amax))
        with torch.no_grad():
            q.x_scale.fill_(float(s_x))
            q.h_scale.fill_(float(s_h))  # h_mult / h_shift: derive_multipliers_
            for d, sfx in enumerate(q._suffixes()):
                w = direction_weights(layer, 0, reverse=d == 1)
                for name, t in (("ih", w.w_ih), ("hh", w.w_hh)):
                    codes, scale = quantize_rows(t)
                    getattr(q, f"w_{name}{sfx}").copy_(codes)
                    getattr(q, f"w_{name}_scale{sfx}").copy_(scale)
                zeros = torch.zeros(layer.hidden_size * gate_count(cell))
                b_ih = (w.b_ih if w.b_ih is not None else zeros).double()
                b_hh = (w.b_hh if w.b_hh is not None else zeros).double()
                if cell is CellType.GRU:  # [r | z | n_x | n_h]: the reset gate scales b_hn
                    b = torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H:], b_hh[2 * H:]])
                else:
                    b = b_ih + b_hh
                getattr(q, "bias" + sfx).copy_(q12_from_real(b))
            q.derive_multipliers_()
        return q

    # --- integer parameters ---------------------------------------------------------------
    def direction(self, d: int) -> IntDirection:
        sfx = self._suffixes()[d]
        g = lambda n: getattr(self, n + sfx)  # noqa: E731
        return IntDirection(g("w_ih"), g("w_hh"), g("mult_ih"), g("shift_ih"), g("mult_hh"), g("shift_hh"), g("bias"))

    def layer_params(self) -> IntLayer:
        return IntLayer(self.cell, self.h_mult, self.h_shift, self.cell_frac, self.sig_lut, self.tanh_lut)

    # --- float boundary <-> integer state -------------------------------------------------
    def state_to_int(self, state, batch: int, device) -> list:
        """Torch-shaped float state (or None) -> per-direction integer states (int64)."""
        H, D = self.hidden_size, self.directions
        if state is None:
            z = torch.zeros(batch, H, dtype=torch.int64, device=device)
            return [(z, z) if self.cell is CellType.LSTM else z for _ in range(D)]
        if self.cell is CellType.LSTM:
            h, c = state
            h8 = quantize_q8(h, self.h_scale).to(torch.int64)
            c16 = torch.clamp(torch.round(c.double() * 2.0**self.cell_frac), -INT16_MAX - 1, INT16_MAX).to(torch.int64)
            return [(h8[d], c16[d]) for d in range(D)]
        h16 = torch.clamp(torch.round(state.double() * 2.0**GATE_FRAC), -INT16_MAX, INT16_MAX).to(torch.int64)
        return [h16[d] for d in range(D)]

    def state_to_float(self, states: list):
        if self.cell is CellType.LSTM:
            h = torch.stack([s[0] for s in states]).float() * self.h_scale
            c = torch.stack([s[1] for s in states]).float() * 2.0**-self.cell_frac
            return h, c
        return torch.stack(states).float() * 2.0**-GATE_FRAC

    def forward_int(self, x8: Tensor, states: list) -> tuple[Tensor, list]:
        """x8 (T, B, I) int codes -> (y8 (T, B, D*H) int64 codes, new integer states). A delta layer
        runs the delta step from the zero delta state (whatever `states` holds; the C kernel does
        the same from a fresh delta state)."""
        lp = self.layer_params()
        outs, new = [], []
        delta = None if self.delta_threshold is None else (self.delta_threshold, self.delta_input)
        self.delta_counts = [0, 0]
        for d in range(self.directions):
            y, st = run_direction(x8, states[d], self.direction(d), lp, reverse=d == 1, delta=delta,
                                  counts=self.delta_counts)
            outs.append(y)
            new.append(st)
        return (torch.cat(outs, -1) if len(outs) > 1 else outs[0]), new

    @torch.no_grad()
    def forward(self, x: Tensor, state=None):
        if self.batch_first:
            x = x.transpose(0, 1)
        x8 = quantize_q8(x, self.x_scale)
        y8, st = self.forward_int(x8, self.state_to_int(state, x.shape[1], x.device))
        y = y8.float() * self.h_scale
        return (y.transpose(0, 1) if self.batch_first else y), self.state_to_float(st)


class IntegerEmbedding(DtypeAnchored):
    """int8 table with one per-tensor scale: a lookup yields the first layer's input codes."""

    rnnslim_kind = "int8_integer_embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(1))

    def rnnslim_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}

    @classmethod
    def from_float(cls, emb: nn.Embedding) -> IntegerEmbedding:
        q = cls(emb.num_embeddings, emb.embedding_dim)
        s = act_scale(float(emb.weight.detach().abs().max()))
        with torch.no_grad():
            q.scale.fill_(s)
            q.weight.copy_(quantize_q8(emb.weight.detach(), q.scale).to(torch.int8))
        return q

    def forward(self, ids: Tensor) -> Tensor:
        return self.weight[ids].float() * self.scale


class LinearOutput(str, Enum):
    FLOAT = "float"  # dequantized per row: logits of a decoder
    INT8 = "int8"  # requantized to int8 codes (an input projection feeding integer layers)


class IntegerLinear(DtypeAnchored):
    """int8 x int8 -> int32 Linear; see the module docstring for the two output modes."""

    rnnslim_kind = "int8_integer_linear"

    def __init__(self, in_features: int, out_features: int, output: LinearOutput | str = LinearOutput.FLOAT) -> None:
        super().__init__()
        self.in_features, self.out_features, self.output = in_features, out_features, LinearOutput(output)
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.int32))  # in accumulator units
        self.register_buffer("in_scale", torch.ones(1))
        # derived from the scales (derive_multipliers_), not stored: see derived_buffers
        if self.output is LinearOutput.FLOAT:
            self.register_buffer("out_scale", torch.ones(out_features), persistent=False)  # float32(s_in * s_w[row])
        else:
            self.register_buffer("out_mult", torch.full((out_features,), 1 << 30, dtype=torch.int32), persistent=False)
            self.register_buffer("out_shift", torch.full((out_features,), 31, dtype=torch.int8), persistent=False)
            self.register_buffer("out_q_scale", torch.ones(1))
        self.register_load_state_dict_post_hook(lambda module, _keys: module.derive_multipliers_())

    def derived_buffers(self) -> dict[str, Tensor]:
        """Computed from weight_scale, in_scale (and out_q_scale); older files that hold them load when equal."""
        names = ("out_scale",) if self.output is LinearOutput.FLOAT else ("out_mult", "out_shift")
        return {n: getattr(self, n) for n in names}

    @torch.no_grad()
    def derive_multipliers_(self) -> None:
        """FLOAT: out_scale = float32(s_in * s_w[row]); INT8: out_mult/out_shift requantize one
        accumulator unit (s_in * s_w[row]) to the int8 output scale out_q_scale."""
        acc_scale = float(self.in_scale) * self.weight_scale.detach().cpu().double()  # per row
        if self.output is LinearOutput.FLOAT:
            self.out_scale.copy_(acc_scale.float())
        else:
            m, n = _mult(acc_scale.numpy() / float(self.out_q_scale))
            self.out_mult.copy_(m)
            self.out_shift.copy_(n)

    def rnnslim_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "output": self.output.value}

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, output={self.output.value}"

    @classmethod
    def from_float(cls, linear: nn.Linear, in_scale: float, output: LinearOutput | str = LinearOutput.FLOAT,
                   out_amax: float | None = None) -> IntegerLinear:
        q = cls(linear.in_features, linear.out_features, output)
        if q.output is LinearOutput.INT8 and out_amax is None:
            raise ValueError("an integer Linear with int8 output needs the calibrated range of its output")
        s_in = np.float32(in_scale)
        with torch.no_grad():
            codes, scale = quantize_rows(linear.weight)
            q.weight.copy_(codes)
            q.weight_scale.copy_(scale)
            q.in_scale.fill_(float(s_in))
            q._bias_from_float(linear.bias)
            if q.output is LinearOutput.INT8:
                q.out_q_scale.fill_(act_scale(out_amax))
            q.derive_multipliers_()
        return q

    def _bias_from_float(self, bias: Tensor | None) -> None:
        """The float bias in accumulator units (s_in * s_w[row] per row), rounded and clamped."""
        if bias is not None:
            acc_scale = float(self.in_scale) * self.weight_scale.double()  # real value of one accumulator unit
            self.bias.copy_(torch.clamp(torch.round(bias.detach().double() / acc_scale), -BIAS_MAX, BIAS_MAX)
                            .to(torch.int32))

    @classmethod
    def tied_to(cls, emb: IntegerEmbedding, linear: nn.Linear, in_scale: float) -> IntegerLinear:
        """The decoder of a tied model (linear.weight is the embedding's float matrix): its weight
        IS the embedding's int8 table (one tensor: stored once, one C array) and every row's scale
        is the table's per-tensor scale; the accumulators are still dequantized per row."""
        if (linear.out_features, linear.in_features) != (emb.num_embeddings, emb.embedding_dim):
            raise ValueError(f"a tied decoder is ({emb.num_embeddings}, {emb.embedding_dim}) like the embedding, got "
                             f"({linear.out_features}, {linear.in_features})")
        q = cls(linear.in_features, linear.out_features, LinearOutput.FLOAT)
        with torch.no_grad():
            q._buffers["weight"] = emb.weight  # shared, not copied
            q.weight_scale.fill_(float(emb.scale))
            q.in_scale.fill_(float(np.float32(in_scale)))
            q._bias_from_float(linear.bias)
            q.derive_multipliers_()
        return q

    def forward_int(self, x8: Tensor) -> Tensor:
        """int codes (..., I) -> int32 accumulators (..., O) including the bias."""
        return torch.matmul(x8.to(torch.int32), self.weight.to(torch.int32).t()) + self.bias

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        acc = self.forward_int(quantize_q8(x, self.in_scale))
        if self.output is LinearOutput.FLOAT:
            return acc.float() * self.out_scale
        return sat(requant(acc, self.out_mult, self.out_shift), -Q8_MAX, Q8_MAX).float() * self.out_q_scale
