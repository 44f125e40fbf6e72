"""Sum of squares of the inputs that reach each weight, for activation-aware importance.

Over every calibration token (eval mode, no dropout; inputs as found by
rnnslim.recurrent.inputs):

    Linear weight (O, I)            sum_t x_t^2                      -> (1, I)
    Embedding weight (V, E)         count of token v (one-hot input) -> (V, 1)
    RNN weight_ih_l{k} (G*H, I)     sum_t x_t^2 of layer k's input   -> (1, I)
    RNN weight_hh_l{k} (G*H, P)     sum_t h_{t-1}^2 (h_{-1} = h0)    -> (1, P)
    RNN weight_hr_l{k} (P, H)       sum_t (o_t * tanh(c_t))^2        -> (1, H)
    biases                          number of tokens                 -> ()
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rnnslim.recurrent.inputs import WeightInputs, canonical_names, collect_weight_inputs
from rnnslim.tasks.base import Batch


class _SquareSums:
    """InputSink adding each event's squared inputs (and token counts for biases)."""

    def __init__(self, vocab_sizes: dict[str, int]) -> None:
        self.sums: dict[str, Tensor] = {}
        self.vocab_sizes = vocab_sizes  # embedding param name -> V

    def _add(self, name: str, value: Tensor) -> None:
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def __call__(self, event: WeightInputs) -> None:
        for name, x in event.weights.items():
            self._add(name, x.pow(2).sum(0).unsqueeze(0))
        for name, ids in event.ids.items():
            self._add(name, torch.bincount(ids, minlength=self.vocab_sizes[name]).float().unsqueeze(1))
        for name in event.biases:
            self._add(name, torch.tensor(float(event.tokens)))


@torch.no_grad()
def input_square_sums(model: nn.Module, batches: Sequence[Batch], stateful: bool = False) -> dict[str, Tensor]:
    """{param name: sum of squared inputs, broadcastable to the parameter} (see module doc)."""
    vocab = {f"{p}.weight" if p else "weight": m.num_embeddings for p, m in model.named_modules()
             if isinstance(m, nn.Embedding)}
    sink = _SquareSums(vocab)
    collect_weight_inputs(model, batches, sink, stateful)
    # tied parameters: report sums under the name named_parameters() uses (the first one)
    canonical = canonical_names(model)
    out: dict[str, Tensor] = {}
    for name, value in sink.sums.items():
        key = canonical.get(name, name)
        out[key] = out[key] + value if key in out else value
    return out
