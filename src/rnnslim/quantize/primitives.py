"""Affine quantization primitives shared by every quantized kind.

    q = clamp(round(x / scale) + zero_point, qmin, qmax),   x_hat = (q - zero_point) * scale

Granularity:
    per-tensor   one (scale, zp) for the whole tensor
    per-channel  one per output row (axis 0): for packed recurrent weights that is one per
                 gate row, so i/f/g/o rows of a unit each get their own scale
    group-wise   one per group of `group_size` consecutive input columns of each row
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor


class Granularity(str, Enum):
    TENSOR = "tensor"
    CHANNEL = "channel"
    GROUP = "group"


@dataclass(frozen=True)
class QSpec:
    bits: int = 8
    symmetric: bool = True
    granularity: Granularity = Granularity.CHANNEL
    group_size: int = 64

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ValueError(f"bits must be in [2, 16], got {self.bits}")
        if self.granularity is Granularity.GROUP and self.group_size < 1:
            raise ValueError("group_size must be >= 1")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        # symmetric uses a restricted range (-127..127 for int8) so that -x quantizes exactly
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1


def _reduce_view(x: Tensor, spec: QSpec) -> Tensor:
    """View of x whose last dim is reduced to compute one scale per remaining entry."""
    if spec.granularity is Granularity.TENSOR:
        return x.reshape(1, -1)
    rows = x.reshape(x.shape[0], -1)
    if spec.granularity is Granularity.CHANNEL:
        return rows
    cols = rows.shape[1]
    if cols % spec.group_size:
        raise ValueError(f"group_size {spec.group_size} does not divide the {cols} input columns")
    return rows.reshape(rows.shape[0], cols // spec.group_size, spec.group_size)


def qparams_from_range(lo: Tensor, hi: Tensor, spec: QSpec) -> tuple[Tensor, Tensor]:
    """(scale, zero_point) covering [lo, hi] (elementwise tensors of any shape)."""
    lo = torch.minimum(lo, torch.zeros_like(lo))
    hi = torch.maximum(hi, torch.zeros_like(hi))
    if spec.symmetric:
        amax = torch.maximum(-lo, hi)
        scale = amax / spec.qmax
        zp = torch.zeros_like(scale, dtype=torch.int32)
    else:
        scale = (hi - lo) / (spec.qmax - spec.qmin)
        zp = (spec.qmin - torch.round(lo / scale.clamp_min(1e-12))).clamp(spec.qmin, spec.qmax).to(torch.int32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero rows: any scale works
    return scale.float(), zp


def compute_qparams(x: Tensor, spec: QSpec) -> tuple[Tensor, Tensor]:
    """Min-max (scale, zero_point) of x with the spec's granularity.

    Shapes: tensor -> (1,), channel -> (rows,), group -> (rows, cols // group_size).
    """
    v = _reduce_view(x.detach().float(), spec)
    lo, hi = v.amin(dim=-1), v.amax(dim=-1)
    scale, zp = qparams_from_range(lo, hi, spec)
    return scale.reshape(-1) if spec.granularity is Granularity.TENSOR else scale, (
        zp.reshape(-1) if spec.granularity is Granularity.TENSOR else zp)


def _broadcast(p: Tensor, x: Tensor, spec: QSpec) -> Tensor:
    if spec.granularity is Granularity.TENSOR:
        return p.reshape(1).expand(1)  # scalar broadcast
    if spec.granularity is Granularity.CHANNEL:
        return p.reshape(-1, *([1] * (x.dim() - 1)))
    return p.repeat_interleave(spec.group_size, dim=1).reshape(x.shape)


def quantize(x: Tensor, scale: Tensor, zero_point: Tensor, spec: QSpec) -> Tensor:
    """Float -> integer codes (int32 tensor with values in [qmin, qmax])."""
    s, z = _broadcast(scale, x, spec), _broadcast(zero_point, x, spec)
    return torch.clamp(torch.round(x / s) + z, spec.qmin, spec.qmax).to(torch.int32)


def dequantize(q: Tensor, scale: Tensor, zero_point: Tensor, spec: QSpec) -> Tensor:
    s, z = _broadcast(scale, q, spec), _broadcast(zero_point, q, spec)
    return (q.to(torch.float32) - z) * s


def fake_quantize(x: Tensor, spec: QSpec, scale: Tensor | None = None, zero_point: Tensor | None = None) -> Tensor:
    """Quantize-dequantize with a straight-through estimator: forward rounds, backward is identity."""
    if scale is None:
        scale, zero_point = compute_qparams(x, spec)
    xq = dequantize(quantize(x, scale, zero_point, spec), scale, zero_point, spec).to(x.dtype)
    return x + (xq - x).detach()


def sqnr_db(reference: Tensor, approx: Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(|ref|^2 / |ref - approx|^2)."""
    ref = reference.detach().double()
    noise = (ref - approx.detach().double()).pow(2).sum().item()
    signal = ref.pow(2).sum().item()
    if noise == 0:
        return math.inf
    return 10.0 * math.log10(signal / noise)
