"""int8 on a real reference model (charlstm-256x2): loss change and kernel parity."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim import load_model
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.tasks.charlm import CharLMTask, stream_nll

TOKENS = 2000




@pytest.fixture(scope="module")
def setup(shared_models, shakespeare):
    model = load_model(shared_models / "charlstm-256x2.json").eval()
    task = CharLMTask.for_model(model, shakespeare)
    calib = [b.inputs for b in task.calibration_batches(4, 16, 64)]
    d = task.split("valid")[: TOKENS + 1]
    return model, calib, d


@pytest.mark.parametrize("mode", list(Int8Mode))
def test_loss_within_half_a_percent(setup, mode):
    model, calib, d = setup
    base = stream_nll(model, d)["loss"]
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=mode), calibration=calib)
    loss = stream_nll(q, d)["loss"]
    assert loss <= base * 1.005, f"{mode.value}: {loss:.4f} vs fp32 {base:.4f}"


def test_kernel_equals_reference_on_the_real_model(setup):
    from rnnslim.quantize.int8 import IntegerRunner
    from rnnslim.quantize.int8.kernel import KernelUnavailable

    model, calib, d = setup
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    try:
        runner = IntegerRunner(q)
    except KernelUnavailable as e:
        pytest.skip(str(e))
    x = d[:600]
    with torch.no_grad():
        ref, _ = q(x[:, None])
    assert torch.equal(runner.run(x)[0], ref[:, 0])
