"""Second moments of the inputs each weight matrix sees, for the data-aware SVD (svd.spectrum).

    grams = input_grams(model, task.calibration_batches(8), stateful=task.stateful)
    grams["rnn.layers.1.weight_hh_l0"]    # (P, P) sum of h_{t-1} h_{t-1}^T over every token
    grams["embedding.weight"]             # (V,) how often each token was looked up

Collected with rnnslim.recurrent.inputs (forward hooks, the recurrent inputs re-run through
the reference cells in float32), accumulated in float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rnnslim.recurrent.inputs import WeightInputs, collect_weight_inputs


def input_grams(model: nn.Module, batches: Iterable, stateful: bool = False) -> dict[str, Tensor]:
    """{weight name: X^T X (in, in)} for Linear / recurrent weights, {embedding weight: counts (V,)}."""
    grams: dict[str, Tensor] = {}

    def sink(ev: WeightInputs) -> None:
        for name, x in ev.weights.items():
            x = x.double()
            grams[name] = grams[name] + x.t() @ x if name in grams else x.t() @ x
        for name, ids in ev.ids.items():
            rows = model.get_parameter(name).shape[0]
            counts = torch.bincount(ids, minlength=rows).double()
            grams[name] = grams[name] + counts if name in grams else counts

    collect_weight_inputs(model, batches, sink, stateful=stateful)
    return grams
