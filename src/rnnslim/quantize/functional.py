"""Run a recurrent layer from a flat list of (dequantized or fake-quantized) weights.

`fused_forward` calls the same ATen kernels as torch.nn.LSTM/GRU/RNN (torch._VF), so
a weight-only quantized layer runs as fast as fp32 and gradients flow to the weights
(QAT) without parametrizing an nn.LSTM (whose cached `_flat_weights` would go stale).
`unfused_forward` is the explicit per-step loop with fake quantization of activations at
the points of `ActFakeQuant` (see actquant.py); it equals fused_forward when `act` is None.

Weight order follows torch's `_flat_weights`: for each layer l, each direction d:
    w_ih (G*H, I), w_hh (G*H, P), [b_ih (G*H,), b_hh (G*H,)], [w_hr (P, H)]
State shapes follow torch: h (L*D, B, P) [, c (L*D, B, H)].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import _VF, Tensor
from torch.nn import functional as F

from rnnslim.recurrent.gates import CellType


@dataclass(frozen=True)
class RecurrentShape:
    cell: CellType
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    proj_size: int = 0
    dropout: float = 0.0

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_hidden(self) -> int:
        return self.proj_size or self.hidden_size

    def weight_names(self) -> list[str]:
        """Parameter names in torch's flat order (weight_ih_l0, weight_hh_l0, bias_ih_l0, ...)."""
        names = []
        for layer in range(self.num_layers):
            for d in range(self.directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names += [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                if self.bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                if self.proj_size:
                    names.append(f"weight_hr{sfx}")
        return names

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        G = {CellType.LSTM: 4, CellType.GRU: 3}.get(self.cell, 1)
        H, P = self.hidden_size, self.out_hidden
        out = {}
        for name in self.weight_names():
            layer = int(name.split("_l")[1].split("_")[0])
            in_size = self.input_size if layer == 0 else P * self.directions
            if name.startswith("weight_ih"):
                out[name] = (G * H, in_size)
            elif name.startswith("weight_hh"):
                out[name] = (G * H, P)
            elif name.startswith("weight_hr"):
                out[name] = (P, H)
            else:
                out[name] = (G * H,)
        return out

    def zero_state(self, x: Tensor, batch: int):
        h = x.new_zeros(self.num_layers * self.directions, batch, self.out_hidden)
        if self.cell is CellType.LSTM:
            return h, x.new_zeros(self.num_layers * self.directions, batch, self.hidden_size)
        return h


_KERNELS = {CellType.LSTM: _VF.lstm, CellType.GRU: _VF.gru, CellType.RNN_TANH: _VF.rnn_tanh,
            CellType.RNN_RELU: _VF.rnn_relu}


def _batched(shape: RecurrentShape, x: Tensor, state):
    """Add a batch dim to unbatched input/state (torch accepts x (T, I), h (L*D, H))."""
    if x.dim() == 3:
        return x, state, False
    if x.dim() != 2:
        raise ValueError(f"recurrent input must be (T, B, I), (B, T, I) or unbatched (T, I); got shape {tuple(x.shape)}")
    x = x.unsqueeze(0 if shape.batch_first else 1)
    if state is not None:
        state = tuple(s.unsqueeze(1) for s in state) if isinstance(state, tuple) else state.unsqueeze(1)
    return x, state, True


def _unbatch(y: Tensor, state, shape: RecurrentShape):
    y = y.squeeze(0 if shape.batch_first else 1)
    state = tuple(s.squeeze(1) for s in state) if isinstance(state, tuple) else state.squeeze(1)
    return y, state


def _check_input(shape: RecurrentShape, x: Tensor) -> None:
    if x.shape[-1] != shape.input_size:
        raise ValueError(f"input has {x.shape[-1]} features, the layer expects {shape.input_size}")


def fused_forward(shape: RecurrentShape, weights: list[Tensor], x: Tensor, state=None, training: bool = False):
    """Same contract as torch.nn.LSTM/GRU/RNN.forward for a tensor input."""
    _check_input(shape, x)
    x, state, unbatched = _batched(shape, x, state)
    batch = x.shape[0 if shape.batch_first else 1]
    if state is None:
        state = shape.zero_state(x, batch)
    weights = [w.to(x.dtype) for w in weights]
    if shape.cell is CellType.LSTM:
        hx = tuple(s.to(x.dtype) for s in state)
    else:
        hx = state.to(x.dtype)
    out = _KERNELS[shape.cell](x, hx, weights, shape.bias, shape.num_layers, shape.dropout, training,
                               shape.bidirectional, shape.batch_first)
    y, new_state = (out[0], (out[1], out[2])) if shape.cell is CellType.LSTM else (out[0], out[1])
    return _unbatch(y, new_state, shape) if unbatched else (y, new_state)


def _lin(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return F.linear(x, w, b)


def _direction(shape: RecurrentShape, w: dict[str, Tensor], x: Tensor, h: Tensor, c: Tensor | None,
               reverse: bool, act) -> tuple[Tensor, Tensor, Tensor | None]:
    """One direction over time. x: (T, B, I) already activation-quantized. Returns (y (T,B,P), h, c)."""
    q = act if act is not None else (lambda point, t: t)
    gi_all = _lin(x, w["ih"], w.get("b_ih"))  # (T, B, G*H): input projections for all steps at once
    if shape.cell is CellType.GRU:
        gi_all = q("gi", gi_all)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outs: list[Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
    for t in steps:
        hq = q("h", h)
        gh = _lin(hq, w["hh"], w.get("b_hh"))  # (B, G*H)
        if shape.cell is CellType.LSTM:
            i, f, g, o = q("gates", gi_all[t] + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if "hr" in w:
                h = h @ w["hr"].t()  # (B, H) -> (B, P)
        elif shape.cell is CellType.GRU:
            gh = q("gh", gh)
            i_r, i_z, i_n = gi_all[t].chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1.0 - z) * torch.tanh(i_n + r * h_n) + z * h
        else:
            pre = q("pre", gi_all[t] + gh)
            h = torch.relu(pre) if shape.cell is CellType.RNN_RELU else torch.tanh(pre)
        outs[t] = h
    return torch.stack(outs, 0), h, c


def unfused_forward(shape: RecurrentShape, weights: list[Tensor], x: Tensor, state=None, training: bool = False,
                    act=None):
    """Explicit loop; `act` is None or a per-layer sequence of callables (point, tensor) -> tensor
    that fake-quantize activations ("x" layer input, "h" recurrent input, and "gates" (LSTM),
    "gi"/"gh" (GRU) or "pre" (RNN) pre-activations)."""
    _check_input(shape, x)
    x, state, unbatched = _batched(shape, x, state)
    if shape.batch_first:
        x = x.transpose(0, 1)
    if state is None:
        state = shape.zero_state(x, x.shape[1])
    is_lstm = shape.cell is CellType.LSTM
    h0, c0 = (state if is_lstm else (state, None))
    names = shape.weight_names()
    byname = dict(zip(names, weights))
    hs, cs, layer_in = [], [], x
    for layer in range(shape.num_layers):
        a = act[layer] if act is not None else None
        xq = a("x", layer_in) if a is not None else layer_in
        dir_out = []
        for d in range(shape.directions):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w = {"ih": byname[f"weight_ih{sfx}"], "hh": byname[f"weight_hh{sfx}"]}
            if shape.bias:
                w["b_ih"], w["b_hh"] = byname[f"bias_ih{sfx}"], byname[f"bias_hh{sfx}"]
            if shape.proj_size:
                w["hr"] = byname[f"weight_hr{sfx}"]
            k = layer * shape.directions + d
            y, h, c = _direction(shape, w, xq, h0[k], c0[k] if is_lstm else None, d == 1, a)
            dir_out.append(y)
            hs.append(h)
            cs.append(c)
        layer_in = torch.cat(dir_out, dim=2) if len(dir_out) == 2 else dir_out[0]
        if training and shape.dropout and layer < shape.num_layers - 1:
            layer_in = F.dropout(layer_in, shape.dropout, training=True)
    y = layer_in.transpose(0, 1) if shape.batch_first else layer_in
    new_state = (torch.stack(hs), torch.stack(cs)) if is_lstm else torch.stack(hs)
    return _unbatch(y, new_state, shape) if unbatched else (y, new_state)
