"""Quantization-aware training: STE gradients, exact conversion, and a lower loss than PTQ."""

import copy

import pytest
import torch
from torch import nn

from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.actquant import ActQuantConfig
from rnnslim.quantize.api import QAT, WeightOnly, quantize_
from rnnslim.quantize.formats import int_format
from rnnslim.quantize.functional import fused_forward, unfused_forward
from rnnslim.quantize.lowbit import QuantRecurrent, recurrent_shape_of
from rnnslim.quantize.qat import QATRecurrent, calibrate_activations_, convert_qat_, prepare_qat_
from rnnslim.tasks.charlm import CharLMTask
from rnnslim.train import TrainConfig, train


@pytest.mark.parametrize("make", [lambda: nn.LSTM(6, 10, num_layers=2, bidirectional=True),
                                  lambda: nn.GRU(6, 10, batch_first=True), lambda: nn.LSTM(6, 10, proj_size=4)])
def test_unfused_loop_equals_fused_kernel(make):
    m = make()
    shape = recurrent_shape_of(m)
    w = [p.detach() for p in m._flat_weights]
    x = torch.randn(5, 3, 6)
    y1, s1 = fused_forward(shape, w, x)
    y2, s2 = unfused_forward(shape, w, x)
    assert torch.allclose(y1, y2, atol=1e-5)
    for a, b in zip(s1 if isinstance(s1, tuple) else (s1,), s2 if isinstance(s2, tuple) else (s2,)):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("act", [None, ActQuantConfig()])
def test_gradients_reach_the_float_weights_and_convert_is_exact(act):
    m = nn.GRU(8, 16)
    fmt = int_format(4, 8)
    q = QATRecurrent.from_float(m, fmt, act).train()
    x = torch.randn(7, 3, 8)
    y, _ = q(x)
    y.pow(2).sum().backward()
    assert q.weight_hh_l0.grad is not None and q.weight_hh_l0.grad.abs().sum() > 0
    assert q.bias_ih_l0.grad is not None
    q.eval()
    conv = q.convert().eval()
    assert isinstance(conv, QuantRecurrent)
    with torch.no_grad():
        assert torch.equal(conv(x)[0], q(x)[0])
    # the converted weights are exactly the fake-quantized ones the QAT forward used
    ref = QuantRecurrent.from_weights(q.shape, dict(q.named_parameters()), fmt)
    assert torch.equal(conv.weight_ih_l0, ref.weight_ih_l0)


def test_activation_ranges_must_be_observed_first():
    q = QATRecurrent.from_float(nn.LSTM(4, 8), int_format(8, None), ActQuantConfig()).eval()
    with pytest.raises(RuntimeError, match="never observed"):
        q(torch.randn(3, 1, 4))


def test_prepare_and_convert_errors():
    with pytest.raises(ValueError, match="no QAT layers"):
        convert_qat_(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="no float or weight-only quantized layers"):
        prepare_qat_(nn.Sequential(nn.ReLU()), int_format(4, None))


def _loss(task, model):
    return task.evaluate(model, "valid", max_steps=2000)["loss"]


@pytest.mark.parametrize("cell,act", [("lstm", None), ("gru", ActQuantConfig())], ids=["lstm-weights", "gru-weights+act"])
def test_qat_beats_post_training_quantization(cell, act, shakespeare):
    """int2 group-wise: QAT for M steps beats PTQ of the float model trained the same M steps more."""
    task = CharLMTask(shakespeare, max_chars=100_000)
    torch.manual_seed(0)
    base = SequenceModel(task.model_spec(cell=cell, hidden_size=64, num_layers=1, embed_size=16))
    train(base, task, TrainConfig(max_steps=200, batch_size=32, seq_len=48, lr=1e-2, eval_max_steps=300),
          progress=False)
    wcfg = WeightOnly(bits=2, group_size=16)
    more = TrainConfig(max_steps=50, batch_size=32, seq_len=48, lr=3e-3, eval_max_steps=300, seed=1)
    float_more = copy.deepcopy(base)
    train(float_more, task, more, progress=False)
    ptq = _loss(task, quantize_(float_more, wcfg))
    qat = quantize_(copy.deepcopy(base), QAT(weights=wcfg, activations=act))
    calibrate_activations_(qat, task, task.calibration_batches(4, 32, 48))  # train() evaluates its input first
    train(qat, task, more, progress=False)
    quantize_(qat, QAT(step="convert"))
    assert isinstance(qat.rnn.layers[0], QuantRecurrent)
    assert _loss(task, qat) < ptq - 0.05
