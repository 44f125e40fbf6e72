"""Activation ranges of a float SequenceModel, for static and integer int8.

Runs the float model on calibration inputs and observes, per recurrent layer: its input x,
its output h (what feeds W_hh and the next layer), the LSTM cell state c and, for LSTMs
with a projection, the pre-projection vector m = o * tanh(c). nn.LSTM does not expose c
at every step, so LSTM layers are stepped here with explicit matmuls (same math as
recurrent/cells.py); GRU/RNN layers run as the torch module. Ranges are symmetric
magnitudes (amax) chosen by an observer from rnnslim.quantize.observers; the cell state
always uses its exact maximum (it must not saturate, its format is chosen from it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.models.sequence import InputKind, Readout, SequenceModel
from rnnslim.quantize.observers import ObserverKind, make_observer
from rnnslim.quantize.primitives import Granularity, QSpec
from rnnslim.recurrent.cells import direction_weights
from rnnslim.recurrent.gates import CellType
from rnnslim.utils.progress import track

_TENSOR_SPEC = QSpec(bits=8, symmetric=True, granularity=Granularity.TENSOR)


@dataclass
class LayerRanges:
    x: float  # max |layer input| (per tensor)
    h: float  # max |layer output|
    c: float = 0.0  # LSTM: max |cell state| (exact maximum)
    m: float = 0.0  # LSTM with projection: max |o * tanh(c)|


@dataclass
class ActivationRanges:
    """Calibrated magnitudes; `inputs` are the raw model inputs (features models only)."""

    layers: list[LayerRanges]
    decoder_in: float
    inputs: float = 0.0
    projected: float = 0.0  # max |input projection output| before spec.input_activation (0: no activation)
    batches: int = 0
    observer: str = ObserverKind.MINMAX.value
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"observer": self.observer, "batches": self.batches, "inputs": self.inputs,
               "decoder_in": self.decoder_in, "layers": [vars(r) for r in self.layers]}
        return {**out, "projected": self.projected} if self.projected else out


class _Amax:
    """One symmetric observer; amax() = max(|lo|, |hi|) of the observed range."""

    def __init__(self, kind: ObserverKind, percentile: float) -> None:
        kw = {"percentile": percentile} if kind is ObserverKind.PERCENTILE else {}
        self.obs = make_observer(kind, _TENSOR_SPEC, **kw)

    def observe(self, x: Tensor) -> None:
        self.obs.observe(x)

    def amax(self) -> float:
        if self.obs.count == 0:
            return 0.0
        lo, hi = self.obs.range()
        return float(torch.maximum(lo.abs(), hi.abs()).max())


def _lstm_states(layer: nn.LSTM, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Run a single-layer nn.LSTM step by step. x (T, B, I) -> (y (T, B, D*P), c (T, B, D*H), m (T, B, D*H))."""
    ys, cs, ms = [], [], []
    T, B, _ = x.shape
    for d in range(2 if layer.bidirectional else 1):
        w = direction_weights(layer, 0, reverse=d == 1)
        f32 = lambda t: None if t is None else t.float()  # noqa: E731
        w_ih, w_hh, b_ih, b_hh, w_hr = f32(w.w_ih), f32(w.w_hh), f32(w.b_ih), f32(w.b_hh), f32(w.w_hr)
        gi = x @ w_ih.t() + (b_ih if b_ih is not None else 0)  # (T, B, 4H)
        H, P = layer.hidden_size, layer.proj_size or layer.hidden_size
        h, c = x.new_zeros(B, P), x.new_zeros(B, H)
        y, cc, mm = [None] * T, [None] * T, [None] * T
        for t in (range(T - 1, -1, -1) if d == 1 else range(T)):
            g = gi[t] + h @ w_hh.t() + (b_hh if b_hh is not None else 0)
            i, f, gg, o = g.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            m = torch.sigmoid(o) * torch.tanh(c)
            h = m @ w_hr.t() if w_hr is not None else m
            y[t], cc[t], mm[t] = h, c, m
        ys.append(torch.stack(y))
        cs.append(torch.stack(cc))
        ms.append(torch.stack(mm))
    return torch.cat(ys, -1), torch.cat(cs, -1), torch.cat(ms, -1)


@torch.no_grad()
def collect_ranges(model: SequenceModel, inputs: Iterable[Tensor], observer: ObserverKind | str = ObserverKind.MINMAX,
                   percentile: float = 99.99) -> ActivationRanges:
    """Observe activations of the float `model` on `inputs` ((T, B) ids or (T, B, F) features)."""
    kind = ObserverKind(observer)
    layers = list(model.rnn.layers)
    for k, layer in enumerate(layers):
        if not isinstance(layer, nn.RNNBase):
            raise TypeError(f"rnn.layers.{k} is a {type(layer).__name__}; calibrate the float model before quantizing")
    cell = model.rnn.cell
    new = lambda: _Amax(kind, percentile)  # noqa: E731
    obs_in, obs_dec, obs_proj = new(), new(), new()
    obs = [{"x": new(), "h": new(), "m": new()} for _ in layers]
    cmax = [0.0] * len(layers)
    was_training = model.training
    model.eval()
    n = 0
    try:
        for x in track(inputs, desc="calibrate int8"):
            n += 1
            if model.spec.input_kind is not InputKind.EMBEDDING:
                obs_in.observe(x)
            if hasattr(model, "input_act"):  # observe the projection before its activation too
                pre = model.project(x)
                obs_proj.observe(pre)
                h = model.input_act(pre).float()
            else:
                h = model.encode(x).float()
            for k, layer in enumerate(layers):
                obs[k]["x"].observe(h)
                if cell is CellType.LSTM:
                    h, c, m = _lstm_states(layer, h)
                    cmax[k] = max(cmax[k], float(c.abs().max()) if c.numel() else 0.0)
                    if layer.proj_size:
                        obs[k]["m"].observe(m)
                else:
                    dtype = next(layer.parameters()).dtype
                    h = layer(h.to(dtype))[0].float()
                obs[k]["h"].observe(h)
            if model.spec.readout is Readout.LAST:
                h = h[-1]
            elif model.spec.readout is Readout.MEAN:
                h = h.mean(0)
            obs_dec.observe(h)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("calibration needs at least one input batch")
    per_layer = [LayerRanges(x=o["x"].amax(), h=o["h"].amax(), c=cmax[k], m=o["m"].amax()) for k, o in enumerate(obs)]
    return ActivationRanges(layers=per_layer, decoder_in=obs_dec.amax(), inputs=obs_in.amax(),
                            projected=obs_proj.amax(), batches=n,
                            observer=kind.value)
