"""Fake quantization of recurrent activations with running-range observers (for QAT).

One ActFakeQuant per recurrent layer watches named points of the unfused cell
(functional.unfused_forward): "x" (layer input), "h" (hidden state fed back) and the
gate pre-activations ("gates" for LSTM, "gi"/"gh" for GRU, "pre" for RNN). In training
each call updates an exponential moving average of the per-tensor min/max and
quantize-dequantizes with a straight-through estimator; in eval the ranges are frozen.
The ranges are buffers, so they are saved with the model and converted layers reuse them.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rnnslim.quantize.primitives import (
    Granularity,
    QSpec,
    fake_quantize,
    qparams_from_range,
)
from rnnslim.recurrent.gates import CellType

POINTS = {CellType.LSTM: ("x", "h", "gates"), CellType.GRU: ("x", "h", "gi", "gh"),
          CellType.RNN_TANH: ("x", "h", "pre"), CellType.RNN_RELU: ("x", "h", "pre")}
_GATE_POINTS = {"gates", "gi", "gh", "pre"}


class ActQuantConfig(BaseModel):
    """Activation fake quantization: `bits` for the matmul inputs x and h, `gate_bits` for
    the gate pre-activations (integer LSTMs often keep these wider)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    bits: int = Field(default=8, ge=2, le=16)
    gate_bits: int = Field(default=8, ge=2, le=16)
    symmetric: bool = False
    momentum: float = Field(default=0.01, gt=0, le=1, description="EMA factor of the running min/max")


class ActFakeQuant(nn.Module):
    def __init__(self, cell: CellType, cfg: ActQuantConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.points = POINTS[cell]
        self.specs = {p: QSpec(bits=cfg.gate_bits if p in _GATE_POINTS else cfg.bits, symmetric=cfg.symmetric,
                               granularity=Granularity.TENSOR) for p in self.points}
        self.register_buffer("ranges", torch.zeros(len(self.points), 2))  # (P, [lo, hi])
        self.register_buffer("observed", torch.zeros(len(self.points), dtype=torch.bool))

    def forward(self, point: str, x: Tensor) -> Tensor:
        k = self.points.index(point)
        if self.training:
            with torch.no_grad():
                lo, hi = x.detach().min().float(), x.detach().max().float()
                if not bool(self.observed[k]):
                    self.ranges[k, 0], self.ranges[k, 1] = lo, hi
                    self.observed[k] = True
                else:
                    m = self.cfg.momentum
                    self.ranges[k, 0] += m * (lo - self.ranges[k, 0])
                    self.ranges[k, 1] += m * (hi - self.ranges[k, 1])
        elif not bool(self.observed[k]):
            raise RuntimeError(f"activation range of {point!r} was never observed: run the model in training mode "
                               "(QAT) or calibrate before evaluating with activation quantization")
        spec = self.specs[point]
        scale, zp = qparams_from_range(self.ranges[k, 0:1], self.ranges[k, 1:2], spec)
        return fake_quantize(x, spec, scale, zp)

    def extra_repr(self) -> str:
        rs = ", ".join(f"{p}=[{lo:.3g}, {hi:.3g}]" for p, (lo, hi) in zip(self.points, self.ranges.tolist()))
        return f"bits={self.cfg.bits}, gate_bits={self.cfg.gate_bits}, {rs}"
