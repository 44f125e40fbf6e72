"""How packages above tasks extend its evaluation, by registering rather than being imported.

Two kinds of extension, each a factory `make(model) -> object | None` (None: not this model):

- a tally (rnnslim.early_exit registers its ExitTally): sees every evaluated classification
  batch, `tally.add(batch)`, and rewrites the metrics at the end,
  `tally.metrics(full_metrics, full_seconds) -> dict`;
- a stream runner (rnnslim.quantize.int8 registers the C kernel for fully integer models):
  `runner.run(x (T,), state) -> (logits (T, V), state)` computes exactly the model's own
  logits, faster; a language model's stream evaluation uses it instead of the torch forward.

A package registers when it is imported, which it is whenever a model holds its modules
(its module kinds must be registered for the model to exist). The registration goes down
the layers (early_exit / quantize import tasks), so tasks never imports them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Factory = Callable[[nn.Module], object | None]
_TALLIES: list[Factory] = []
_STREAM_RUNNERS: list[Factory] = []


def register_tally(make: Factory) -> None:
    """Add `make(model)`: a tally for the models it knows, None for others."""
    if make not in _TALLIES:
        _TALLIES.append(make)


def register_stream_runner(make: Factory) -> None:
    """Add `make(model)`: a runner for the models it can run exactly, None for others."""
    if make not in _STREAM_RUNNERS:
        _STREAM_RUNNERS.append(make)


def _first(factories: list[Factory], model: nn.Module):
    for make in factories:
        found = make(model)
        if found is not None:
            return found
    return None


def evaluation_tally(model: nn.Module):
    """The first registered tally for `model`, or None (a plain model)."""
    return _first(_TALLIES, model)


def stream_runner(model: nn.Module):
    """The first registered stream runner for `model`, or None (the torch forward runs)."""
    return _first(_STREAM_RUNNERS, model)
