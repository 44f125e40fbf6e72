"""int8 layers for the dynamic and static modes (int8 storage, float-emulated compute).

Weights are stored as int8 codes + one float32 scale per output (gate) row; activations
entering every matrix product are rounded to the int8 grid, per row on the fly (dynamic)
or with calibrated per-tensor scales (static). Products use the dequantized weights, i.e.
s_x * s_w[row] * (q_x . q_w) up to float32 rounding; gate nonlinearities and the state
stay float32 (the INTEGER mode, integer.py, is the one without float).

Int8Recurrent replaces one single-layer nn.LSTM/GRU/RNN in a RecurrentStack with the same
forward contract: x (T, B, I) -> (y (T, B, D*P), state in torch's shapes).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.quantize.anchor import DtypeAnchored
from rnnslim.quantize.int8.config import Int8Mode
from rnnslim.quantize.int8.qweights import (
    DequantCache,
    fake_quant_rows,
    fake_quant_tensor,
    quantize_rows,
)
from rnnslim.recurrent.cells import direction_weights
from rnnslim.recurrent.gates import CellType, as_cell, cell_of_module, gate_count

_EMULATED = (Int8Mode.DYNAMIC, Int8Mode.STATIC)


def _check_mode(mode: Int8Mode | str) -> Int8Mode:
    mode = Int8Mode(mode)
    if mode not in _EMULATED:
        raise ValueError(f"int8 emulated layers support modes {[m.value for m in _EMULATED]}, not {mode.value!r} "
                         "(the integer mode has its own layers in rnnslim.quantize.int8.integer)")
    return mode


def _scale_buffer(value: float) -> Tensor:
    """Per-tensor activation scale from a calibrated magnitude (a zero range gets scale 1)."""
    return torch.tensor([value / 127.0 if value > 0 else 1.0], dtype=torch.float32)


class _ActQuant:
    """Rounds activations to the int8 grid for one mode."""

    def __init__(self, mode: Int8Mode) -> None:
        self.mode = mode

    def __call__(self, x: Tensor, scale: Tensor | None) -> Tensor:
        return fake_quant_rows(x) if self.mode is Int8Mode.DYNAMIC else fake_quant_tensor(x, scale)


class Int8Recurrent(DtypeAnchored):
    """One recurrent layer (1 or 2 directions) with int8 weights; see the module docstring."""

    rnnslim_kind = "int8_recurrent"

    def __init__(self, mode: Int8Mode | str, cell: CellType | str, input_size: int, hidden_size: int,
                 proj_size: int = 0, bidirectional: bool = False, batch_first: bool = False) -> None:
        super().__init__()
        self.mode, self.cell = _check_mode(mode), as_cell(cell)
        if proj_size and self.cell is not CellType.LSTM:
            raise ValueError(f"proj_size is only defined for LSTM, not {self.cell.value}")
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.bidirectional, self.batch_first = bidirectional, batch_first
        G, H, P = gate_count(self.cell), hidden_size, proj_size or hidden_size
        for sfx in self._suffixes():
            self.register_buffer("w_ih" + sfx, torch.zeros(G * H, input_size, dtype=torch.int8))
            self.register_buffer("w_ih_scale" + sfx, torch.ones(G * H))
            self.register_buffer("w_hh" + sfx, torch.zeros(G * H, P, dtype=torch.int8))
            self.register_buffer("w_hh_scale" + sfx, torch.ones(G * H))
            self.register_buffer("b_ih" + sfx, torch.zeros(G * H))
            self.register_buffer("b_hh" + sfx, torch.zeros(G * H))
            if proj_size:
                self.register_buffer("w_hr" + sfx, torch.zeros(P, H, dtype=torch.int8))
                self.register_buffer("w_hr_scale" + sfx, torch.ones(P))
        if self.mode is Int8Mode.STATIC:  # calibrated per-tensor scales of x, h (and m = o*tanh(c))
            self.register_buffer("x_scale", torch.ones(1))
            self.register_buffer("h_scale", torch.ones(1))
            if proj_size:
                self.register_buffer("m_scale", torch.ones(1))
        self._quant = _ActQuant(self.mode)
        self._deq = DequantCache()

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def rnnslim_config(self) -> dict:
        return {"mode": self.mode.value, "cell": self.cell.value, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "proj_size": self.proj_size, "bidirectional": self.bidirectional,
                "batch_first": self.batch_first}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.rnnslim_config().items())

    @classmethod
    def from_float(cls, layer: nn.RNNBase, mode: Int8Mode | str, ranges=None) -> Int8Recurrent:
        """Quantize a single-layer torch LSTM/GRU/RNN; static mode needs its LayerRanges."""
        if layer.num_layers != 1:
            raise ValueError("expected a single-layer module (one per RecurrentStack layer), "
                             f"got num_layers={layer.num_layers}")
        mode = _check_mode(mode)
        if mode is Int8Mode.STATIC and ranges is None:
            raise ValueError("static int8 needs calibrated activation ranges (LayerRanges) for every layer")
        q = cls(mode, cell_of_module(layer), layer.input_size, layer.hidden_size, getattr(layer, "proj_size", 0),
                layer.bidirectional, layer.batch_first)
        q.anchor_like_(next(layer.parameters(), None))
        with torch.no_grad():
            for d, sfx in enumerate(q._suffixes()):
                w = direction_weights(layer, 0, reverse=d == 1)
                for name, t in (("w_ih", w.w_ih), ("w_hh", w.w_hh), ("w_hr", w.w_hr)):
                    if t is not None:
                        codes, scale = quantize_rows(t)
                        getattr(q, name + sfx).copy_(codes)
                        getattr(q, name + "_scale" + sfx).copy_(scale)
                for name, t in (("b_ih", w.b_ih), ("b_hh", w.b_hh)):
                    if t is not None:
                        getattr(q, name + sfx).copy_(t.float())
            if mode is Int8Mode.STATIC:
                q.x_scale.copy_(_scale_buffer(ranges.x))
                q.h_scale.copy_(_scale_buffer(ranges.h))
                if q.proj_size:
                    q.m_scale.copy_(_scale_buffer(ranges.m))
        return q

    # --- forward ------------------------------------------------------------------------
    def _w(self, name: str) -> Tensor:
        return self._deq.get(name, getattr(self, name), getattr(self, self._scale_name(name)))

    @staticmethod
    def _scale_name(name: str) -> str:
        """w_ih -> w_ih_scale, w_ih_reverse -> w_ih_scale_reverse."""
        rev = name.endswith("_reverse")
        return name.removesuffix("_reverse") + "_scale" + ("_reverse" if rev else "")

    def _scale(self, name: str) -> Tensor | None:
        return getattr(self, name, None)

    def _initial(self, x: Tensor, state) -> list:
        """Per-direction initial states from torch's shapes (D, B, P) / (D, B, H)."""
        B, H, P = x.shape[1], self.hidden_size, self.proj_size or self.hidden_size
        if state is None:
            z = lambda n: x.new_zeros(B, n, dtype=torch.float32)  # noqa: E731
            return [(z(P), z(H)) if self.cell is CellType.LSTM else z(H) for _ in range(self.directions)]
        if self.cell is CellType.LSTM:
            h, c = state
            return [(h[d].float(), c[d].float()) for d in range(self.directions)]
        return [state[d].float() for d in range(self.directions)]

    def forward(self, x: Tensor, state=None):
        if self.batch_first:
            x = x.transpose(0, 1)
        in_dtype = x.dtype
        x = x.float()
        xq = self._quant(x, self._scale("x_scale"))
        outs, finals = [], []
        for d, (sfx, st) in enumerate(zip(self._suffixes(), self._initial(x, state))):
            gi = F.linear(xq, self._w("w_ih" + sfx), getattr(self, "b_ih" + sfx))  # (T, B, G*H)
            y, st = self._run(gi, st, sfx, reverse=d == 1)
            outs.append(y)
            finals.append(st)
        y = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
        if self.cell is CellType.LSTM:
            new = (torch.stack([s[0] for s in finals]).to(in_dtype), torch.stack([s[1] for s in finals]).to(in_dtype))
        else:
            new = torch.stack(finals).to(in_dtype)
        y = y.to(in_dtype)
        return (y.transpose(0, 1) if self.batch_first else y), new

    def _run(self, gi: Tensor, st, sfx: str, reverse: bool):
        w_hh, b_hh = self._w("w_hh" + sfx), getattr(self, "b_hh" + sfx)
        w_hr = self._w("w_hr" + sfx) if self.proj_size else None
        h_scale, m_scale = self._scale("h_scale"), self._scale("m_scale")
        T = gi.shape[0]
        outs: list[Tensor] = [None] * T  # type: ignore[list-item]
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            if self.cell is CellType.LSTM:
                h, c = st
                i, f, g, o = (gi[t] + F.linear(self._quant(h, h_scale), w_hh, b_hh)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                if w_hr is not None:
                    h = F.linear(self._quant(h, m_scale), w_hr)
                st = (h, c)
            elif self.cell is CellType.GRU:
                gh = F.linear(self._quant(st, h_scale), w_hh, b_hh)
                i_r, i_z, i_n = gi[t].chunk(3, dim=-1)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = st = n + z * (st - n)
            else:
                pre = gi[t] + F.linear(self._quant(st, h_scale), w_hh, b_hh)
                h = st = torch.relu(pre) if self.cell is CellType.RNN_RELU else torch.tanh(pre)
            outs[t] = h
        if T == 0:
            P = self.proj_size or self.hidden_size
            return gi.new_zeros(0, gi.shape[1], P), st
        return torch.stack(outs, 0), st


class Int8Linear(DtypeAnchored):
    """nn.Linear with int8 per-row weights; float bias; dynamic or static input quantization."""

    rnnslim_kind = "int8_linear"

    def __init__(self, mode: Int8Mode | str, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.mode = _check_mode(mode)
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        if self.mode is Int8Mode.STATIC:
            self.register_buffer("in_scale", torch.ones(1))
        self._quant = _ActQuant(self.mode)
        self._deq = DequantCache()

    def rnnslim_config(self) -> dict:
        return {"mode": self.mode.value, "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.has_bias}

    def extra_repr(self) -> str:
        return f"mode={self.mode.value}, in_features={self.in_features}, out_features={self.out_features}"

    @classmethod
    def from_float(cls, linear: nn.Linear, mode: Int8Mode | str, in_range: float | None = None) -> Int8Linear:
        mode = _check_mode(mode)
        if mode is Int8Mode.STATIC and in_range is None:
            raise ValueError("a static int8 Linear needs the calibrated range of its input")
        q = cls(mode, linear.in_features, linear.out_features, linear.bias is not None)
        q.anchor_like_(linear.weight)
        with torch.no_grad():
            codes, scale = quantize_rows(linear.weight)
            q.weight.copy_(codes)
            q.weight_scale.copy_(scale)
            if linear.bias is not None:
                q.bias.copy_(linear.bias.float())
            if mode is Int8Mode.STATIC:
                q.in_scale.copy_(_scale_buffer(in_range))
        return q

    def forward(self, x: Tensor) -> Tensor:
        w = self._deq.get("weight", self.weight, self.weight_scale)
        return F.linear(self._quant(x.float(), getattr(self, "in_scale", None)), w, self.bias)


class Int8Embedding(DtypeAnchored):
    """nn.Embedding with int8 rows and one float32 scale per row (a lookup needs no activation quantization)."""

    rnnslim_kind = "int8_embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(num_embeddings))

    def rnnslim_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per row"

    @classmethod
    def from_float(cls, emb: nn.Embedding) -> Int8Embedding:
        q = cls(emb.num_embeddings, emb.embedding_dim)
        q.anchor_like_(emb.weight)
        with torch.no_grad():
            codes, scale = quantize_rows(emb.weight)
            q.weight.copy_(codes)
            q.weight_scale.copy_(scale)
        return q

    def forward(self, ids: Tensor) -> Tensor:
        return self.weight[ids].float() * self.weight_scale[ids].unsqueeze(-1)
