"""evaluate: a model's metric through the user's own data loop (issue 20: see the accuracy of
the model that will run on the device, e.g. the integer int8 one, with the user's code)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from rnnslim.capture.trace import eval_mode
from rnnslim.capture.view import user_view
from rnnslim.models.sequence import SequenceModel


def _weight(target) -> int:
    if isinstance(target, torch.Tensor):
        return max(int(target.numel()), 1)
    try:
        return max(len(target), 1)
    except TypeError:
        return 1


def evaluate(model: nn.Module, batches: Callable[[], Iterable] | Iterable, metric: Callable) -> float:
    """Mean of metric(out, target) over `batches()` ((inputs, target) pairs in the user's layout;
    inputs a tensor or a tuple of forward's arguments), weighted by the number of target
    elements (the batch size for class labels, the tokens for per-step targets).

    `model`: a captured SequenceModel (called through user_view, float or int8) or any module
    called as it is. A forward that returns a tuple (out, hidden) gives metric its first item."""
    view = user_view(model) if isinstance(model, SequenceModel) else model
    total, weight = 0.0, 0
    with eval_mode(view), torch.no_grad():
        for inputs, target in (batches() if callable(batches) else batches):
            out = view(*(inputs if isinstance(inputs, tuple) else (inputs,)))
            if isinstance(out, tuple):
                out = out[0]
            w = _weight(target)
            total += float(metric(out, target)) * w
            weight += w
    if weight == 0:
        raise ValueError("evaluate: batches yielded no batch; give a callable returning (inputs, target) pairs")
    return total / weight
