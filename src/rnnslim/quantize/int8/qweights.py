"""int8 weight storage and activation quantizers shared by the int8 modules.

Weights: symmetric int8 in [-127, 127] with one float32 scale per output row (for packed
recurrent weights that is one scale per gate row, see recurrent/gates.py).

Activations (dynamic and static modes) are quantized per tensor or per row to the same
symmetric int8 grid; the float-emulated modules multiply those grid values with the
dequantized weights, which equals the int8 x int8 -> int32 product rescaled by
s_x * s_w[row] up to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnslim.quantize.primitives import Granularity, QSpec, compute_qparams, quantize

ROW_SPEC = QSpec(bits=8, symmetric=True, granularity=Granularity.CHANNEL)
QMAX = ROW_SPEC.qmax  # 127


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """Float (R, C) -> (int8 codes (R, C), float32 scales (R,)); all-zero rows get scale 1."""
    w = w.detach().float()
    scale, zp = compute_qparams(w, ROW_SPEC)
    return quantize(w, scale, zp, ROW_SPEC).to(torch.int8), scale.float()


def dequantize_rows(q: Tensor, scale: Tensor) -> Tensor:
    return q.float() * scale.float().unsqueeze(-1)


def fake_quant_rows(x: Tensor) -> Tensor:
    """Dynamic quantization: one scale per row (last dim), amax / 127, computed on the fly."""
    s = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / QMAX
    return torch.clamp(torch.round(x / s), -QMAX, QMAX) * s


def fake_quant_tensor(x: Tensor, scale: Tensor) -> Tensor:
    """Static quantization with a calibrated per-tensor scale (values beyond it saturate)."""
    return torch.clamp(torch.round(x / scale), -QMAX, QMAX) * scale


class DequantCache:
    """Float copies of int8 weights, rebuilt only when a buffer changes (load, edit).

    Keyed by the data pointer and version counter of the codes and the scales, so a
    `load_state_dict` (which copies in place and bumps the version) invalidates it.
    """

    def __init__(self) -> None:
        self._store: dict[str, tuple[tuple, Tensor]] = {}

    def get(self, name: str, q: Tensor, scale: Tensor) -> Tensor:
        key = (q.data_ptr(), q._version, scale.data_ptr(), scale._version, q.device)
        hit = self._store.get(name)
        if hit is None or hit[0] != key:
            hit = (key, dequantize_rows(q, scale))
            self._store[name] = hit
        return hit[1]
