"""capture() refuses a module holding rnnslim's quantized layers up front, naming the layer and
the order that works (capture the float model, then quantize the captured one)."""

from __future__ import annotations

import pytest
import torch

from rnnslim.capture import CaptureError, capture
from rnnslim.quantize.int8 import Int8Config, quantize_int8_
from tests.capture.user_modules import TinyGRU


def test_user_module_quantized_in_place_is_refused_naming_the_layer():
    model = quantize_int8_(TinyGRU().eval(), Int8Config())
    with pytest.raises(CaptureError, match=r"^gru\.layers\.0 is rnnslim's quantized layer Int8Recurrent; "
                                           r"capture the float model, then quantize the captured one"):
        capture(model, (torch.randn(2, 5, 3),))


def test_capturing_first_then_quantizing_works():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    captured = capture(TinyGRU().eval(), (x,))
    quantize_int8_(captured, Int8Config())
    kinds = {getattr(type(m), "rnnslim_kind", None) for m in captured.modules()}
    assert "int8_recurrent" in kinds
    with pytest.raises(CaptureError, match="quantized layer"):  # and a quantized captured model is refused too
        capture(captured, (x.transpose(0, 1).contiguous(),))
