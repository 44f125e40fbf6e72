"""rnnslim.tasks.extensions: packages above tasks extend an evaluation by registering, not by being imported."""

from __future__ import annotations

from torch import nn

from rnnslim.tasks import extensions


def test_the_first_factory_that_knows_the_model_wins(monkeypatch):
    monkeypatch.setattr(extensions, "_TALLIES", [])
    plain, special = nn.Linear(2, 2), nn.Linear(2, 3)
    extensions.register_tally(lambda m: "exits" if m is special else None)
    extensions.register_tally(lambda m: "fallback" if isinstance(m, nn.Linear) else None)
    assert extensions.evaluation_tally(special) == "exits"
    assert extensions.evaluation_tally(plain) == "fallback"
    assert extensions.evaluation_tally(nn.ReLU()) is None


def test_registering_twice_counts_once(monkeypatch):
    monkeypatch.setattr(extensions, "_STREAM_RUNNERS", [])
    seen = []

    def make(m):
        seen.append(m)

    extensions.register_stream_runner(make)
    extensions.register_stream_runner(make)
    assert extensions.stream_runner(nn.ReLU()) is None and len(seen) == 1


def test_early_exit_and_int8_register_themselves():
    from rnnslim.early_exit import exit_tally
    from rnnslim.quantize.int8 import kernel_eval

    assert exit_tally in extensions._TALLIES
    assert kernel_eval.stream_runner in extensions._STREAM_RUNNERS
    assert extensions.stream_runner(nn.GRU(2, 3)) is None  # a float module: the torch path
