"""evaluate: the user's batches and metric, weighted by target elements, float and int8."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim.capture import capture, evaluate, user_view
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from tests.capture.user_modules import KeywordGRU


def _accuracy(out, target):
    return float((out.argmax(-1) == target).float().mean())


def test_evaluate_weights_by_batch_size_and_runs_the_integer_model():
    torch.manual_seed(0)
    m = KeywordGRU().eval()
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(b, 8, 13, generator=g), torch.randint(0, 5, (b,), generator=g)) for b in (5, 2, 9)]
    model = capture(m, (data[0][0],))
    with torch.no_grad():
        hits = sum(int((m(x).argmax(-1) == y).sum()) for x, y in data)
    assert evaluate(model, lambda: iter(data), _accuracy) == pytest.approx(hits / 16)
    assert evaluate(m, lambda: iter(data), _accuracy) == pytest.approx(hits / 16)  # the user's module as it is
    view = user_view(model)
    q = quantize_int8_(copy.deepcopy(model), Int8Config(mode=Int8Mode.INTEGER),
                       calibration=[view.to_time_major(x) for x, _ in data])
    with torch.no_grad():
        hits_q = sum(int((user_view(q)(x).argmax(-1) == y).sum()) for x, y in data)
    assert evaluate(q, lambda: iter(data), _accuracy) == pytest.approx(hits_q / 16)  # the int8 model, user's loop
    with pytest.raises(ValueError, match="no batch"):
        evaluate(model, lambda: iter([]), _accuracy)
