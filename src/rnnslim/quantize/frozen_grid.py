"""The integer grid of a post-training quantized weight, held fixed while QAT trains it.

QAT that starts from a GPTQ'd layer must start AT the GPTQ model: re-deriving scales from
the dequantized weights (min-max) moves every group whose extreme level is unused, and the
first step is then a worse model than the one QAT was asked to refine (a probe on
charlstm-512x2 int2: +40 % valid loss from min-max scales vs +4.35 % for GPTQ). A FrozenGrid
keeps the layer's stored scales and zero points (the shapes of IntFormat.layout: (rows,
cols // group) for groups, (rows,) per channel, (1,) per tensor); rounding a weight on it
gives GPTQ's codes back exactly at step 0, and converting encodes on the same grid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.quantize.formats import BaseFormat, IntFormat
from rnnslim.quantize.primitives import dequantize, quantize
from rnnslim.quantize.qtensor import QTensor


class FrozenGrid(nn.Module):
    """Scales (float32) and zero points (int32) of one (rows, cols) weight in an IntFormat."""

    def __init__(self, fmt: IntFormat, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.fmt, self.shape = fmt, tuple(int(s) for s in shape)
        scale_shape = fmt.layout(self.shape)["scale"][0]
        self.register_buffer("scale", torch.ones(scale_shape, dtype=torch.float32))
        self.register_buffer("zero_point", torch.zeros(scale_shape, dtype=torch.int32))

    @classmethod
    def of(cls, q: QTensor) -> FrozenGrid:
        """The grid a quantized tensor is stored on."""
        g = cls(q.fmt, q.shape)
        g.scale.copy_(q.scale.float())
        if not q.fmt.symmetric:
            g.zero_point.copy_(q.zero_point.to(torch.int32))
        return g.to(q.scale.device)

    def _levels(self, w: Tensor) -> Tensor:
        return quantize(w.detach().float().reshape(self.shape[0], -1), self.scale, self.zero_point, self.fmt.spec)

    def roundtrip(self, w: Tensor) -> Tensor:
        """w rounded to this grid (no gradient)."""
        return dequantize(self._levels(w), self.scale, self.zero_point, self.fmt.spec).reshape(w.shape).to(w.dtype)

    def encode(self, w: Tensor, fmt: IntFormat, name: str) -> QTensor:
        """The stored QTensor of w on this grid (`fmt`: this grid's format, entropy coding as asked)."""
        q = QTensor(fmt, self.shape, name)
        for k, t in fmt.encode_levels(self._levels(w.cpu()).cpu(), self.scale.cpu(), self.zero_point.cpu()).items():
            getattr(q, k).copy_(t)
        return q.to(w.device)


def same_grid_format(stored: BaseFormat, asked: BaseFormat) -> IntFormat | None:
    """The format QAT keeps a quantized layer in: its own, when `asked` has the same bits, symmetry,
    granularity and group size (how the scales were chosen, `clip`, no longer matters; entropy
    coding of the codes is kept if either asks for it); None when they differ or are not integer."""
    if not (isinstance(stored, IntFormat) and isinstance(asked, IntFormat)):
        return None
    key = ("bits", "symmetric", "granularity") + (("group_size",) if stored.granularity.value == "group" else ())
    if any(getattr(stored, k) != getattr(asked, k) for k in key):
        return None
    return stored.model_copy(update={"entropy_coding": stored.entropy_coding or asked.entropy_coding})
