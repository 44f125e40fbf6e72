"""Extra metrics a model's own modules add to a task's evaluation (early exits, for now).

A package above tasks registers a factory `make(model) -> tally | None` (rnnslim.early_exit
registers its ExitTally when it is imported, which it is whenever a model holds exit heads).
A tally sees every evaluated batch, `tally.add(batch)`, and rewrites the metrics at the end,
`tally.metrics(full_metrics, full_seconds) -> dict`. The registration goes down the layers
(early_exit imports tasks), so tasks never imports the packages that extend its evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_FACTORIES: list[Callable[[nn.Module], object | None]] = []


def register_tally(make: Callable[[nn.Module], object | None]) -> None:
    """Add `make(model)`, which returns a tally for the models it knows and None for others."""
    if make not in _FACTORIES:
        _FACTORIES.append(make)


def evaluation_tally(model: nn.Module):
    """The first registered tally for `model`, or None (a plain model)."""
    for make in _FACTORIES:
        tally = make(model)
        if tally is not None:
            return tally
    return None
