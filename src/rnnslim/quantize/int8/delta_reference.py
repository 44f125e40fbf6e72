"""The kernel's delta step in torch integers, with its MAC counters: what the tests hold the C to.

    logits, counters = delta_reference(model, tokens)            # the model's thresholds
    logits, counters = delta_reference(model, feats, delta=4)    # or an override (delta.py)

One stream from the zero state at batch 1 through the integer layers' own forward (a delta
layer runs integer_cells.run_direction's delta step), on a copy of the model when `delta`
overrides its thresholds. Returns the logits (T, O), every step's output whatever the
readout, and the counters in the layout of the C delta state's head ([steps, 0, (kept W_ih
columns, kept W_hh columns) per layer]; delta.delta_stats_of turns them into DeltaStats).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor

from rnnslim.models.sequence import Readout
from rnnslim.quantize.int8.delta import Thresholds, integer_layers, set_delta_threshold_


@torch.no_grad()
def delta_reference(model, x: Tensor, delta: Thresholds | str = "model") -> tuple[Tensor, np.ndarray]:
    """x: token ids (T,) or features (T, F) -> (logits (T, O) float32, int64 counters)."""
    if delta != "model":
        model = set_delta_threshold_(copy.deepcopy(model), delta)
    if model.spec.readout is not Readout.ALL:  # every step's output, as the streaming kernel gives
        model = copy.deepcopy(model)
        model.spec = model.spec.model_copy(update={"readout": Readout.ALL})
    layers = integer_layers(model)
    logits, _ = model(x.reshape(x.shape[0], 1, *x.shape[1:]))
    counters = np.zeros(2 + 2 * len(layers), dtype=np.int64)
    counters[0] = x.shape[0]
    for k, ly in enumerate(layers):
        if ly.delta_threshold is not None:
            counters[2 + 2 * k: 4 + 2 * k] = ly.delta_counts
    return logits[:, 0], counters
