"""The fully integer path keeps a trained feature-input classifier's decisions (issue 25): every
test sequence the float model decides with a clear margin gets the same class from the
integer model (the issue's lost points were sequences with float margins of ~0.002 logits,
from an under-trained checkpoint; any activation quantization flips those)."""

from __future__ import annotations

import copy

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.train import TrainConfig, load_best, train

CLEAR_MARGIN = 0.1  # logits: top-1 minus top-2


def test_integer_classifier_keeps_clear_decisions(tiny_classify_task):
    task = tiny_classify_task(train=60, test=30)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=16, num_layers=2))
    result = train(model, task, TrainConfig(max_steps=80, batch_size=8, lr=1e-2, eval_every=10, seed=0), progress=False)
    load_best(model, result)
    model.eval()
    cal = [b.inputs for b in task.calibration_batches(8, 16)]
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER), calibration=cal)
    clear = 0
    with torch.no_grad():
        for b in task.equal_length_batches("test"):
            lf, lq = model(b.inputs)[0], q(b.inputs)[0]
            top2 = lf.topk(2, -1).values
            sure = (top2[:, 0] - top2[:, 1]) > CLEAR_MARGIN
            clear += int(sure.sum())
            assert torch.equal(lf.argmax(-1)[sure], lq.argmax(-1)[sure])
    assert clear >= 20  # the check covered most of the 30 test sequences
    f, i = task.evaluate(model, "test")["accuracy"], task.evaluate(q, "test")["accuracy"]
    assert i >= f - (30 - clear) / 30
