"""Second moments of the inputs of every weight matrix: H = E[x x^T] over calibration tokens.

    hs = collect_hessians(model, calibration, names=["rnn.layers.0.weight_ih_l0", ...])
    hs["rnn.layers.0.weight_hh_l0"]   # (P, P) float64, from h_{t-1} of that layer

x is what really multiplies the weight (rnnslim.recurrent.inputs): the layer input for
weight_ih, h_{t-1} for weight_hh, o*tanh(c) for weight_hr, the features for a Linear. H is
the Hessian (up to a factor 2) of each row's output-reconstruction error, which is what
the OBS walk in obs.py needs; it is shared by pruning (SparseGPT) and quantization (GPTQ).
Embeddings have one-hot inputs (a diagonal H: nothing to compensate) and are not handled.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rnnslim.recurrent.inputs import WeightInputs, canonical_names, collect_weight_inputs


class _GramSink:
    """InputSink accumulating X^T X (float64) and token counts for the wanted names."""

    def __init__(self, wanted: set[str], canonical: dict[str, str]) -> None:
        self.wanted, self.canonical = wanted, canonical
        self.grams: dict[str, Tensor] = {}
        self.tokens: dict[str, int] = {}

    def __call__(self, event: WeightInputs) -> None:
        for raw, x in event.weights.items():
            name = self.canonical.get(raw, raw)
            if name not in self.wanted:
                continue
            x = x.double()
            g = x.t() @ x
            self.grams[name] = self.grams[name] + g if name in self.grams else g
            self.tokens[name] = self.tokens.get(name, 0) + x.shape[0]


def module_of(name: str) -> str:
    """Module path of a parameter name ('rnn.layers.0.weight_ih_l0' -> 'rnn.layers.0')."""
    return name.rpartition(".")[0]


@torch.no_grad()
def collect_hessians(model: nn.Module, batches: Iterable, names: Iterable[str], stateful: bool = False
                     ) -> dict[str, Tensor]:
    """{name: E[x x^T] (in, in) float64} for each weight in `names` (see the module doc)."""
    wanted = set(names)
    sink = _GramSink(wanted, canonical_names(model))
    collect_weight_inputs(model, batches, sink, stateful, modules={module_of(n) for n in wanted})
    missing = sorted(wanted - set(sink.grams))
    if missing:
        raise ValueError(f"no calibration inputs reached {missing[:4]}{' ...' if len(missing) > 4 else ''}: "
                         "second-order reconstruction needs Linear or LSTM/GRU/RNN weights that the forward uses "
                         "(embeddings and tied weights are not supported)")
    bad = sorted(n for n in wanted if not bool(torch.isfinite(sink.grams[n]).all()))
    if bad:
        raise ValueError(f"the inputs of {bad[:4]} hold NaN or Inf on the calibration data: the model computes "
                         "non-finite values there (check its weights and the data)")
    return {n: sink.grams[n] / sink.tokens[n] for n in wanted}
