"""rnnslim.tasks.tallies: packages above tasks extend an evaluation by registering, not by being imported."""

from __future__ import annotations

from torch import nn

from rnnslim.tasks import tallies


def test_the_first_factory_that_knows_the_model_gives_the_tally(monkeypatch):
    monkeypatch.setattr(tallies, "_FACTORIES", [])
    plain, special = nn.Linear(2, 2), nn.Linear(2, 3)
    tallies.register_tally(lambda m: "exits" if m is special else None)
    tallies.register_tally(lambda m: "fallback" if isinstance(m, nn.Linear) else None)
    assert tallies.evaluation_tally(special) == "exits"
    assert tallies.evaluation_tally(plain) == "fallback"
    assert tallies.evaluation_tally(nn.ReLU()) is None


def test_registering_twice_counts_once(monkeypatch):
    monkeypatch.setattr(tallies, "_FACTORIES", [])
    seen = []

    def make(m):
        seen.append(m)

    tallies.register_tally(make)
    tallies.register_tally(make)
    tallies.evaluation_tally(nn.ReLU())
    assert len(seen) == 1


def test_early_exit_registers_its_tally():
    from rnnslim.early_exit import exit_tally

    assert exit_tally in tallies._FACTORIES
