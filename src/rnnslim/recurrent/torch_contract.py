"""TorchContractStack: layers chained by rnnslim, called exactly like a torch.nn.LSTM/GRU/RNN.

A user's module calls `self.rnn(x, hidden)` with torch's multi-layer state, h (L*D, B, P)
or (h, c) for an LSTM, and reads `self.rnn.hidden_size` / `num_layers`. When rnnslim swaps
the recurrent module for one layer module per torch layer (an int8 layer, a layer of its
own size), this wrapper keeps that contract: it splits the state per layer, chains the
layers, and stacks the final states back in torch's layout.

    stack = TorchContractStack.from_layers(torch_lstm, [int8_layer_0, int8_layer_1])
    y, (h, c) = stack(x, (h0, c0))          # same shapes as torch_lstm(x, (h0, c0))

Layers take and return the single-layer torch contract (x (T, B, F), state (D, B, .)),
sequence-first; the wrapper handles batch_first once. Dropout between layers applies in
training only, as in torch. When structured pruning leaves layers of different sizes, the
state is a list with one torch-shaped entry per layer (in and out): `zero_state(module, B)`
builds a zero initial state in whichever form a recurrent module takes (the replacement for
an `init_hidden` whose one `nhid` cannot name layers of different sizes). Saved models rebuild it
from its rnnslim_config() (rnnslim.io.modules registers the kind: io sits above recurrent).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.recurrent.gates import CellType, as_cell, cell_of_module


class TorchContractStack(nn.Module):
    rnnslim_kind = "torch_contract_stack"

    def __init__(self, cell: CellType | str, input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool = False, batch_first: bool = False, dropout: float = 0.0,
                 proj_size: int = 0) -> None:
        super().__init__()
        self.cell = as_cell(cell)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.batch_first, self.dropout, self.proj_size = bidirectional, batch_first, dropout, proj_size
        self.layers = nn.ModuleList(nn.Identity() for _ in range(num_layers))  # filled by from_layers / load

    def rnnslim_config(self) -> dict:
        return {"cell": self.cell.value, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional, "batch_first": self.batch_first,
                "dropout": self.dropout, "proj_size": self.proj_size}

    @classmethod
    def from_layers(cls, module: nn.RNNBase, layers: list[nn.Module]) -> TorchContractStack:
        """A stack with `module`'s interface (sizes, batch_first, dropout) holding `layers`."""
        if len(layers) != module.num_layers:
            raise ValueError(f"{len(layers)} layer modules for a {module.num_layers}-layer {type(module).__name__}")
        out = cls(cell_of_module(module), module.input_size, module.hidden_size, module.num_layers,
                  module.bidirectional, module.batch_first, float(module.dropout), getattr(module, "proj_size", 0))
        for k, layer in enumerate(layers):
            out.layers[k] = layer
        return out

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def uniform(self) -> bool:
        """True when every layer has the same state sizes (torch's one-tensor state fits)."""
        sizes = {(getattr(m, "hidden_size", None), getattr(m, "proj_size", 0)) for m in self.layers}
        return len(sizes) == 1

    def forward(self, x: Tensor, hx=None):
        """x (T, B, F) (or batch first) and torch's state -> (y, state). With layers of unequal
        sizes the state is a list with one torch-shaped entry per layer, in and out."""
        if self.batch_first:
            x = x.transpose(0, 1)
        D, lstm = self.directions, self.cell is CellType.LSTM
        per_layer = isinstance(hx, list) or (isinstance(hx, tuple) and len(hx) and not isinstance(hx[0], Tensor))
        finals = []
        for k, layer in enumerate(self.layers):
            if hx is None:
                st = None
            elif per_layer:
                st = hx[k]
            elif lstm:
                st = (hx[0][k * D:(k + 1) * D], hx[1][k * D:(k + 1) * D])
            else:
                st = hx[k * D:(k + 1) * D]
            x, st = layer(x, st)
            finals.append(st)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        if not self.uniform():
            new = finals
        elif lstm:
            new = (torch.cat([s[0] for s in finals]), torch.cat([s[1] for s in finals]))
        else:
            new = torch.cat(finals)
        return (x.transpose(0, 1) if self.batch_first else x), new


def single_layer_copies(module: nn.RNNBase) -> list[nn.RNNBase]:
    """One single-layer, sequence-first torch module per layer of `module` (weights copied)."""
    from rnnslim.recurrent.stack import RecurrentStack

    stack = RecurrentStack.from_torch(module)
    layers = list(stack.layers)
    for layer in layers:
        layer.batch_first = False
    return layers


def zero_state(module: nn.Module, batch_size: int):
    """A zero initial state for `module` (torch LSTM / GRU / RNN, TorchContractStack, or one of
    rnnslim's single-layer modules) in the form its forward takes: torch's h (L*D, B, P), an
    (h, c) pair for an LSTM (c (L*D, B, H)), or a list of one such entry per layer when a
    stack's layers differ in size. dtype and device: those of the module's first parameter."""
    if isinstance(module, TorchContractStack):
        per = [zero_state(layer, batch_size) for layer in module.layers]
        if not module.uniform():
            return per
        if module.cell is CellType.LSTM:
            return torch.cat([p[0] for p in per]), torch.cat([p[1] for p in per])
        return torch.cat(per)
    ref = next(module.parameters(), None)  # quantized layers hold a float dtype anchor
    kw = {"dtype": ref.dtype, "device": ref.device} if ref is not None and ref.is_floating_point() else {}
    rows = getattr(module, "num_layers", 1) * (2 if module.bidirectional else 1)
    hidden = module.hidden_size
    out = getattr(module, "proj_size", 0) or hidden
    h = torch.zeros(rows, batch_size, out, **kw)
    lstm = isinstance(module, nn.LSTM) or as_cell(getattr(module, "cell", "gru")) is CellType.LSTM
    return (h, torch.zeros(rows, batch_size, hidden, **kw)) if lstm else h
