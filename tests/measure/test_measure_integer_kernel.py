"""A fully integer int8 model is timed in rnnslim's C kernel (how it is deployed)."""

import torch

from rnnslim.measure import measure
from rnnslim.measure.run import integer_kernel_step
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, quantize_int8_


def _model():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=20, embed_size=16,
                     layers=[LayerShape(hidden_size=16)] * 2, output_size=20)
    return SequenceModel(spec).eval()


def test_float_model_has_no_kernel_step():
    assert integer_kernel_step(_model(), lambda m: None) is None


def test_integer_model_is_timed_in_the_kernel():
    m = _model()
    quantize_int8_(m, Int8Config(mode="integer"), calibration=[torch.randint(0, 20, (16, 4))])
    said = []
    step = integer_kernel_step(m, said.append)
    assert step is not None and "C kernel" in said[0]
    state = step(None)
    assert step(state) is not None  # state carried from step to step
    report = measure(m, threads=(1,), quick=True, include_baselines=False, log=said.append)
    assert report.variants[0].latency.median_ms > 0
    assert any("C kernel" in s for s in said)
