"""export_model on a user's own nn.Module: captured first with its example inputs, clear refusals
without them or for a module that already holds rnnslim's quantized layers; the way the
refusals point (capture, integer int8, export) reaches a bit-exact C library."""

from __future__ import annotations

import pytest
import torch
from examples_lm import ExamplesWordLM, corpus  # noqa: E402
from int8_models import needs_kernel

from rnnslim.export.formats import export_model
from rnnslim.quantize.int8 import Int8Config, quantize_int8_


def _lm():
    torch.manual_seed(0)
    return ExamplesWordLM().eval(), torch.randint(0, 30, (5, 2))


def test_a_user_module_is_captured_with_its_example_inputs(tmp_path):
    m, x = _lm()
    with pytest.raises(ValueError, match=r"ExamplesWordLM is your own module, not an rnnslim model: give example_inputs"):
        export_model(m, "torch", tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()
    facts = export_model(m, "torch", tmp_path / "m.pt2", example_inputs=(x, None))
    assert facts["format"] == "torch-pt2" and (tmp_path / "m.pt2").is_file()


def test_a_user_module_with_rnnslim_quantized_layers_is_refused_by_name(tmp_path):
    m, x = _lm()
    quantize_int8_(m, Int8Config(mode="dynamic"))
    with pytest.raises(ValueError, match=r"already holds rnnslim's quantized layers \(encoder, rnn.layers.0, "
                                         r"rnn.layers.1, \.\.\.\).*capture the float module"):
        export_model(m, "torch", tmp_path / "m.pt2", example_inputs=(x, None))
    assert not (tmp_path / "m.pt2").exists()


@needs_kernel
def test_the_refusals_way_capture_then_integer_int8_exports_bit_exact_c(tmp_path):
    """quantize_int8_(user module, integer) says: capture it first; doing so gives a C library
    that matches the integer kernel bit for bit."""
    from rnnslim.capture import capture

    m, x = _lm()
    with pytest.raises(ValueError, match="capture it first"):
        quantize_int8_(m, Int8Config(mode="integer"), calibration=[x])
    data = corpus()
    seq = capture(m, (x, None))
    quantize_int8_(seq, Int8Config(mode="integer"), calibration=[data[i:i + 10] for i in range(0, 40, 10)])
    facts = export_model(seq, "c", tmp_path / "c", check_streams=5)
    assert facts["check"]["bit_exact"] and facts["check"]["streams"] == 5
