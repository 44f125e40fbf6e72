"""Recurrent state carried between batches, and calling a model with it.

State is whatever a model returns as its second output: a tensor (GRU/RNN h), a tuple
(LSTM (h, c)) or a list of those (rnnslim's RecurrentStack, one entry per layer).
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn


def detach_state(state):
    """The same nesting of tensors, detached from the graph (None stays None)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def _takes_state(model: nn.Module) -> bool:
    """True when forward has a second positional parameter without a default
    (`forward(input, hidden)`, as in PyTorch's word-LM example): it is then given None."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(pos) >= 2 and pos[1].default is inspect.Parameter.empty


def call_model(model: nn.Module, inputs: Tensor, state):
    """model(inputs, state), or model(inputs) for a first batch (state None) unless forward
    requires the state argument; returns the model's raw output."""
    return model(inputs, state) if state is not None or _takes_state(model) else model(inputs)
