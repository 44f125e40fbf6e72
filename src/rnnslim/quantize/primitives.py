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


def granule_view(x: Tensor, spec: QSpec) -> Tensor:
    """x reshaped so that its last dim is one granule (tensor: (1, N), channel: (rows, cols),
    group: (rows, cols // group_size, group_size)); raises if group_size does not divide."""
    return _reduce_view(x, spec)


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


# --- additions: clipping search, scale shapes, error helpers ------------------------------


class ClipMethod(str, Enum):
    """How the quantization range of a weight granule is chosen."""

    MINMAX = "minmax"  # the full [min, max] range: no clipping error, coarse steps
    MSE = "mse"  # shrink the range per granule to minimise the mean squared error


DEFAULT_CLIP_RATIOS = tuple(1.0 - 0.025 * k for k in range(21))  # 1.0 .. 0.5


def scale_shape(shape: tuple[int, ...] | torch.Size, spec: QSpec) -> tuple[int, ...]:
    """Shape of the (scale, zero_point) tensors that compute_qparams returns for `shape`."""
    if spec.granularity is Granularity.TENSOR:
        return (1,)
    rows = int(shape[0])
    cols = math.prod(int(s) for s in shape[1:])
    if spec.granularity is Granularity.CHANNEL:
        return (rows,)
    if cols % spec.group_size:
        raise ValueError(f"group_size {spec.group_size} does not divide the {cols} input columns")
    return (rows, cols // spec.group_size)


def search_clip_qparams(x: Tensor, spec: QSpec, ratios: tuple[float, ...] = DEFAULT_CLIP_RATIOS
                        ) -> tuple[Tensor, Tensor]:
    """(scale, zero_point) like compute_qparams, but each granule's min-max range is shrunk
    by the ratio in `ratios` that minimises its squared quantization error.

    Low-bit weights (4 bits and below) lose much less to a few clipped outliers than to
    coarse steps everywhere; the search is a grid over ratios, vectorised over granules.
    Zero stays inside every range, so exact zeros (pruned weights) stay exact.
    """
    v = _reduce_view(x.detach().float(), spec)  # (..., n): one granule per leading index
    lo, hi = v.amin(dim=-1), v.amax(dim=-1)
    best_err = torch.full_like(lo, math.inf)
    best_scale = torch.ones_like(lo)
    best_zp = torch.zeros(lo.shape, dtype=torch.int32, device=lo.device)
    for r in ratios:
        scale, zp = qparams_from_range(lo * r, hi * r, spec)
        s, z = scale.unsqueeze(-1), zp.unsqueeze(-1).float()
        q = torch.clamp(torch.round(v / s) + z, spec.qmin, spec.qmax)
        err = ((q - z) * s - v).pow(2).sum(dim=-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zp = torch.where(better, zp, best_zp)
    if spec.granularity is Granularity.TENSOR:
        return best_scale.reshape(-1), best_zp.reshape(-1)
    return best_scale, best_zp


def quantize_dequantize(x: Tensor, scale: Tensor, zero_point: Tensor, spec: QSpec) -> Tensor:
    """x rounded to the quantization grid (no gradient trick; see fake_quantize for STE)."""
    return dequantize(quantize(x, scale, zero_point, spec), scale, zero_point, spec).to(x.dtype)


@dataclass(frozen=True)
class QuantError:
    """How far an approximation is from its reference (all on float64)."""

    sqnr_db: float
    mse: float
    max_abs: float
    rel_l2: float  # |ref - approx| / |ref|

    def __str__(self) -> str:
        return f"SQNR {self.sqnr_db:.2f} dB, MSE {self.mse:.3g}, max |err| {self.max_abs:.3g}, rel L2 {self.rel_l2:.3g}"


def quant_error(reference: Tensor, approx: Tensor) -> QuantError:
    ref, app = reference.detach().double(), approx.detach().double()
    if ref.shape != app.shape:
        raise ValueError(f"shapes differ: reference {tuple(ref.shape)} vs approximation {tuple(app.shape)}")
    diff = ref - app
    norm = ref.norm().item()
    return QuantError(
        sqnr_db=sqnr_db(ref, app),
        mse=diff.pow(2).mean().item() if diff.numel() else 0.0,
        max_abs=diff.abs().max().item() if diff.numel() else 0.0,
        rel_l2=diff.norm().item() / norm if norm > 0 else (0.0 if diff.norm().item() == 0 else math.inf),
    )
