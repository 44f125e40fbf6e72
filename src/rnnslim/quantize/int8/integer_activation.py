"""IntegerActivation: an elementwise activation on int8 codes as a 256-entry lookup table.

The input projection of an integer model requantizes to int8 codes (scale s_in); an
elementwise activation after it (ModelSpec.input_activation: a CRNN's ReLU) is exact on those
codes as a table: out code = clamp(round(act(q * s_in) / s_out), -127, 127) for every q in
[-128, 127] (entry q + 128), s_out the calibrated scale of the activation's output (the first
recurrent layer's input scale). ReLU with s_in == s_out is max(0, q).

Like the other integer layers it takes and returns floats at its boundary only: the input is
the projection's exactly representable float codes * s_in, the output codes * s_out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnslim.models.sequence import InputActivation, apply_input_activation
from rnnslim.quantize.anchor import DtypeAnchored
from rnnslim.quantize.int8.fixedpoint import Q8_MAX, quantize_q8

TABLE_OFFSET = 128  # entry of code q is table[q + 128]


def activation_table(kind: InputActivation | str, in_scale: float, out_scale: float) -> Tensor:
    """The int8 table (256,) of `kind` from input codes (scale in_scale) to output codes (out_scale)."""
    q = torch.arange(-TABLE_OFFSET, TABLE_OFFSET, dtype=torch.float64)  # every int8 code
    y = apply_input_activation(q * float(np.float32(in_scale)), kind) / float(np.float32(out_scale))
    return torch.clamp(torch.round(y), -Q8_MAX, Q8_MAX).to(torch.int8)


class IntegerActivation(DtypeAnchored):
    rnnslim_kind = "int8_integer_activation"

    def __init__(self, kind: InputActivation | str = InputActivation.RELU) -> None:
        super().__init__()
        self.kind = InputActivation(kind)
        if self.kind is InputActivation.NONE:
            raise ValueError("an IntegerActivation needs an activation (relu, tanh, sigmoid, gelu or hardtanh)")
        self.register_buffer("table", torch.zeros(2 * TABLE_OFFSET, dtype=torch.int8))
        self.register_buffer("in_scale", torch.ones(1))
        self.register_buffer("out_scale", torch.ones(1))

    def rnnslim_config(self) -> dict:
        return {"kind": self.kind.value}

    def extra_repr(self) -> str:
        return f"kind={self.kind.value}"

    @classmethod
    def from_scales(cls, kind: InputActivation | str, in_scale: float, out_scale: float) -> IntegerActivation:
        q = cls(kind)
        with torch.no_grad():
            q.in_scale.fill_(float(np.float32(in_scale)))
            q.out_scale.fill_(float(np.float32(out_scale)))
            q.table.copy_(activation_table(q.kind, in_scale, out_scale))
        return q

    def forward_int(self, codes: Tensor) -> Tensor:
        """int codes (any shape, values in [-127, 127]) -> output codes (int32)."""
        return self.table[codes.long() + TABLE_OFFSET].to(torch.int32)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.forward_int(quantize_q8(x, self.in_scale)).float() * self.out_scale
