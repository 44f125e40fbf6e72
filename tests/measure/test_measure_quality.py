"""Quality: a built-in task's evaluate, or the user's eval_fn for their own module."""

import math

import pytest
from torch import nn

from rnnslim.measure.quality import evaluate_quality
from rnnslim.models.sequence import SequenceModel
from rnnslim.tasks.charlm import CharLMTask


def test_task_metric_on_a_truncated_split():
    task = CharLMTask(text="abcdefgh" * 200)
    m = SequenceModel(task.model_spec("gru", 8, 1))
    q = evaluate_quality(m, task, "test", max_steps=50)
    assert q.source == "task:charlm" and q.split == "test" and q.max_steps == 50
    assert q.primary_metric == "loss_nats" and not q.higher_is_better
    assert q.metrics["tokens"] == 50
    assert q.value == pytest.approx(q.metrics["bits_per_char"] * math.log(2))


def test_eval_fn_for_a_user_module():
    q = evaluate_quality(nn.LSTM(2, 3), eval_fn=lambda m: {"accuracy": 0.75, "name": "x"})
    assert q.metrics == {"accuracy": 0.75} and q.primary_metric == "accuracy" and q.higher_is_better


def test_no_task_no_quality_and_clear_errors():
    assert evaluate_quality(nn.GRU(2, 3)) is None
    with pytest.raises(TypeError, match="eval_fn"):
        evaluate_quality(nn.GRU(2, 3), task=CharLMTask(text="ab" * 100))
    with pytest.raises(ValueError, match="numeric"):
        evaluate_quality(nn.GRU(2, 3), eval_fn=lambda m: {})
