"""Mixed precision: the plan respects the budget and applying it gives the planned bytes."""

import itertools
import random

import pytest
import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.lowbit import QuantRecurrent
from rnnslim.quantize.mixed import (
    MixedPrecision,
    _knapsack,
    apply_plan_,
    plan_mixed_precision,
)
from rnnslim.tasks.charlm import CharLMTask


@pytest.fixture(scope="module")
def task():
    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs"]
    return CharLMTask(text=" ".join(rng.choice(words) for _ in range(6000)))


def _model(task):
    torch.manual_seed(0)
    m = SequenceModel(task.model_spec(cell="lstm", hidden_size=64, num_layers=2))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m.eval()


def _stored(model):
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


CFG = {"bits": (32, 8, 4, 2), "calib_batches": 2, "batch_size": 8, "seq_len": 32}


def test_plan_respects_budget_and_applies_exactly(task):
    m = _model(task)
    fp32 = _stored(m)
    plans = {}
    for ratio in (0.12, 0.2, 0.5):
        plan = plan_mixed_precision(m, task, MixedPrecision(budget_ratio=ratio, **CFG))
        assert plan.total_bytes <= plan.budget_bytes == int(ratio * fp32)
        assert plan.float_bytes == fp32
        assert {r.path for r in plan.rows} == {"embedding", "rnn.layers.0", "rnn.layers.1", "decoder"}
        assert all(set(r.sensitivity) == {32, 8, 4, 2} and r.sensitivity[32] == 0 for r in plan.rows)
        plans[ratio] = plan
    assert plans[0.12].predicted_loss >= plans[0.2].predicted_loss >= plans[0.5].predicted_loss
    assert isinstance(m.rnn.layers[0], torch.nn.LSTM)  # planning leaves the model alone
    text = str(plans[0.2])
    assert "rnn.layers.1" in text and "budget" in text
    apply_plan_(m, plans[0.2])
    assert _stored(m) == plans[0.2].total_bytes
    assert any(isinstance(layer, QuantRecurrent) for layer in m.rnn.layers)
    assert m.history[-1]["op"] == "quantize_weights"


def test_budget_in_bytes_and_infeasible_budget(task):
    m = _model(task)
    plan = plan_mixed_precision(m, task, MixedPrecision(budget_bytes=30_000, **CFG))
    assert plan.total_bytes <= 30_000
    with pytest.raises(ValueError, match="smallest reachable size"):
        plan_mixed_precision(m, task, MixedPrecision(budget_bytes=5_000, **CFG))


def test_config_errors():
    with pytest.raises(ValueError, match="exactly one"):
        MixedPrecision()
    with pytest.raises(ValueError, match="exactly one"):
        MixedPrecision(budget_bytes=10, budget_ratio=0.5)
    with pytest.raises(ValueError, match="not supported"):
        MixedPrecision(budget_ratio=0.5, bits=(4, 1))


def test_knapsack_is_optimal():
    rng = random.Random(1)
    for _ in range(30):
        n = rng.randint(1, 4)
        costs = [[rng.randint(1, 20) for _ in range(3)] for _ in range(n)]
        losses = [[rng.uniform(-1, 5) for _ in range(3)] for _ in range(n)]
        cap = rng.randint(5, 50)
        best = None
        for pick in itertools.product(range(3), repeat=n):
            if sum(costs[i][j] for i, j in enumerate(pick)) <= cap:
                v = sum(losses[i][j] for i, j in enumerate(pick))
                best = v if best is None else min(best, v)
        got = _knapsack(costs, losses, cap)
        if best is None:
            assert got is None
        else:
            assert sum(costs[i][j] for i, j in enumerate(got)) <= cap
            assert sum(losses[i][j] for i, j in enumerate(got)) == pytest.approx(best)
