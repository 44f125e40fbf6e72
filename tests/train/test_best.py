"""Checkpoint selection on small validation splits (issue 25): ties on the primary metric go
to the lower validation loss, then to the later step; a split under 30 sequences is named."""

from __future__ import annotations

import torch

from rnnslim.models.sequence import SequenceModel
from rnnslim.train import TrainConfig, train
from rnnslim.train.best import beats, small_valid_note


def test_beats_breaks_ties_by_loss_then_later_step():
    best = {"accuracy": 0.75, "loss": 0.4}
    assert beats({"accuracy": 0.75, "loss": 0.1}, best, "accuracy", True, "loss")
    assert beats({"accuracy": 0.75, "loss": 0.4}, best, "accuracy", True, "loss")  # equal: later step
    assert not beats({"accuracy": 0.75, "loss": 0.5}, best, "accuracy", True, "loss")
    assert beats({"accuracy": 0.875, "loss": 9.0}, best, "accuracy", True, "loss")  # primary first
    assert not beats({"accuracy": 0.5, "loss": 0.0}, best, "accuracy", True, "loss")
    assert not beats({"accuracy": 0.75, "loss": 0.1}, best, "accuracy", True, None)  # no tie metric: first wins
    assert beats({"loss": 1.0}, None, "loss", False, None)


def test_small_valid_note_names_the_count():
    assert "only 8 sequences" in small_valid_note([{"step": 0, "sequences": 8}])
    assert small_valid_note([{"step": 0, "sequences": 30}]) is None
    assert small_valid_note([{"step": 0, "loss": 1.0}]) is None  # language models: no sequence count


def test_classifier_keeps_the_lowest_loss_among_accuracy_ties(tiny_classify_task):
    task = tiny_classify_task(train=40, test=10)
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(hidden_size=16, num_layers=1))
    cfg = TrainConfig(max_steps=60, batch_size=8, lr=1e-2, eval_every=4, seed=0)
    result = train(model, task, cfg, progress=False)
    top = max(h["accuracy"] for h in result.history)
    ties = [h for h in result.history if h["accuracy"] == top]
    assert len({h["loss"] for h in ties}) > 1, "the data must produce ties on accuracy for this test to mean anything"
    kept = next(h for h in reversed(result.history) if h["best"])
    assert kept["loss"] == min(h["loss"] for h in ties)
    assert result.valid_note and f"only {task.evaluated_count('valid')} sequences" in result.valid_note
    assert result.summary()["valid_note"] == result.valid_note
