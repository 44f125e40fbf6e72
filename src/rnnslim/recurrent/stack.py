"""A recurrent stack whose layers may each have their own hidden size.

torch.nn.LSTM/GRU force one hidden size for every layer; structured pruning shrinks
layers unequally, so rnnslim keeps one single-layer torch module per layer (fused fast
kernels, cuDNN on GPU) and chains them itself. `RecurrentStack.from_torch` and
`.to_torch()` convert losslessly whenever the sizes allow it.

State convention: a list with one entry per layer, each in the shape torch uses for a
single-layer module: GRU/RNN h (D, B, H); LSTM (h (D, B, P), c (D, B, H)), with D = 2 for
bidirectional layers and P = proj_size or H.

A layer may read its input through a bias-free bottleneck Linear (LayerSpec.input_rank = r:
x (T, B, I) -> (T, B, r) -> the recurrent module, whose weight_ih is then (G*H, r)); that is
how rnnslim.lowrank stores a low-rank W_ih = U V with torch's fused kernel still running
(U = weight_ih, V = rnn.bottlenecks.{k}.weight). Stacks without one have no `bottlenecks`
modules at all, so their tensors keep the names above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from rnnslim.recurrent.gates import CellType, as_cell, cell_of_module

_TORCH_CLS = {CellType.LSTM: nn.LSTM, CellType.GRU: nn.GRU, CellType.RNN_TANH: nn.RNN, CellType.RNN_RELU: nn.RNN}


@dataclass(frozen=True)
class LayerSpec:
    """Shape of one recurrent layer."""

    hidden_size: int
    proj_size: int = 0
    bidirectional: bool = False
    input_rank: int = 0  # width of a bias-free bottleneck Linear in front of the layer; 0: none

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        if self.proj_size < 0 or (self.proj_size and self.proj_size >= self.hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size), got {self.proj_size}")
        if self.input_rank < 0:
            raise ValueError(f"input_rank must be >= 0, got {self.input_rank}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features per time step leaving this layer: (P or H) * D."""
        return (self.proj_size or self.hidden_size) * self.directions

    def to_dict(self) -> dict:
        return asdict(self)


def make_layer(cell: CellType, input_size: int, spec: LayerSpec, bias: bool = True, batch_first: bool = False) -> nn.RNNBase:
    """A single-layer torch recurrent module for one LayerSpec."""
    cls = _TORCH_CLS[cell]
    kwargs = dict(input_size=input_size, hidden_size=spec.hidden_size, num_layers=1, bias=bias,
                  batch_first=batch_first, bidirectional=spec.bidirectional)
    if cell is CellType.LSTM:
        kwargs["proj_size"] = spec.proj_size
    elif spec.proj_size:
        raise ValueError(f"proj_size is only supported for LSTM, not {cell.value}")
    if cell in (CellType.RNN_TANH, CellType.RNN_RELU):
        kwargs["nonlinearity"] = "relu" if cell is CellType.RNN_RELU else "tanh"
    return cls(**kwargs)


class RecurrentStack(nn.Module):
    """Layers of one cell type chained with optional dropout between them.

    x: (T, B, I) (or (B, T, I) with batch_first) -> y: (T, B, layers[-1].output_size).
    """

    def __init__(self, cell: CellType | str, input_size: int, layers: list[LayerSpec], dropout: float = 0.0,
                 bias: bool = True, batch_first: bool = False) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a RecurrentStack needs at least one layer")
        self.cell = as_cell(cell)
        self.input_size = input_size
        self.specs = list(layers)
        self.dropout = float(dropout)
        self.bias = bias
        self.batch_first = batch_first
        mods, necks, in_size = [], [], input_size
        for spec in self.specs:
            necks.append(nn.Linear(in_size, spec.input_rank, bias=False) if spec.input_rank else nn.Identity())
            mods.append(make_layer(self.cell, spec.input_rank or in_size, spec, bias, batch_first))
            in_size = spec.output_size
        self.layers = nn.ModuleList(mods)
        self.bottlenecks = nn.ModuleList(necks) if any(s.input_rank for s in self.specs) else None

    @property
    def output_size(self) -> int:
        return self.specs[-1].output_size

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def extra_repr(self) -> str:
        sizes = ", ".join((f"r{s.input_rank}:" if s.input_rank else "") + str(s.hidden_size)
                          + (f"p{s.proj_size}" if s.proj_size else "") + ("x2" if s.bidirectional else "")
                          for s in self.specs)
        return f"cell={self.cell.value}, input_size={self.input_size}, hidden=[{sizes}], dropout={self.dropout}"

    def init_state(self, batch_size: int, device=None, dtype=None) -> list:
        """Zero state for every layer (see the module docstring for shapes)."""
        state = []
        for spec in self.specs:
            h = torch.zeros(spec.directions, batch_size, spec.proj_size or spec.hidden_size, device=device, dtype=dtype)
            if self.cell is CellType.LSTM:
                state.append((h, torch.zeros(spec.directions, batch_size, spec.hidden_size, device=device, dtype=dtype)))
            else:
                state.append(h)
        return state

    def forward(self, x: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        new_state = []
        necks = self.bottlenecks
        if necks is not None and len(necks) != len(self.layers):
            raise RuntimeError(f"{len(necks)} input bottlenecks for {len(self.layers)} layers (a layer was removed "
                               "without its bottleneck)")
        for k, layer in enumerate(self.layers):
            if necks is not None:
                x = necks[k](x)  # (T, B, I) -> (T, B, input_rank); Identity where the layer has none
            x, st = layer(x, None if state is None else state[k])
            new_state.append(st)
            if self.dropout and self.training and k < len(self.layers) - 1:
                x = nn.functional.dropout(x, self.dropout, training=True)
        return x, new_state

    def replace_layer(self, index: int, spec: LayerSpec, module: nn.Module) -> None:
        """Swap in a (pruned / quantized) layer module with the same forward contract. A layer
        behind an input bottleneck keeps it (and its input_rank) unless `spec` names another."""
        if not spec.input_rank and self.specs[index].input_rank:
            spec = replace(spec, input_rank=self.specs[index].input_rank)
        self.specs[index] = spec
        self.layers[index] = module

    def set_bottleneck(self, index: int, linear: nn.Linear | None) -> None:
        """Put a bias-free bottleneck Linear (input -> r) in front of layer `index` (None removes
        it); the caller swaps in a layer whose input size is r (replace_layer)."""
        if linear is not None and (linear.bias is not None or linear.out_features < 1):
            raise ValueError("an input bottleneck is a bias-free Linear with at least one output")
        if self.bottlenecks is None:
            self.bottlenecks = nn.ModuleList([nn.Identity() for _ in self.layers])
        self.bottlenecks[index] = nn.Identity() if linear is None else linear
        self.specs[index] = replace(self.specs[index], input_rank=0 if linear is None else linear.out_features)
        if not any(s.input_rank for s in self.specs):
            self.bottlenecks = None

    # --- conversion -----------------------------------------------------------------
    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> RecurrentStack:
        """Copy a multi-layer torch.nn.LSTM/GRU/RNN into a stack (weights copied, not shared)."""
        cell = cell_of_module(module)
        spec = LayerSpec(module.hidden_size, getattr(module, "proj_size", 0), module.bidirectional)
        stack = cls(cell, module.input_size, [spec] * module.num_layers, module.dropout, module.bias, module.batch_first)
        src = dict(module.named_parameters())
        with torch.no_grad():
            for k, layer in enumerate(stack.layers):
                for name, p in layer.named_parameters():  # name like weight_ih_l0[_reverse]
                    p.copy_(src[name.replace("_l0", f"_l{k}")])
        return stack.to(next(module.parameters()).dtype)

    def is_uniform(self) -> bool:
        """True when a single multi-layer torch module can hold this stack."""
        return self.bottlenecks is None and all(s == self.specs[0] for s in self.specs)

    def to_torch(self) -> nn.RNNBase:
        """Build the equivalent multi-layer torch module; raises if sizes differ per layer."""
        if self.bottlenecks is not None:
            raise ValueError(f"layers read their input through low-rank bottlenecks ({self.extra_repr()}); "
                             "torch.nn modules have none")
        if not self.is_uniform():
            raise ValueError(f"layers have different shapes ({self.extra_repr()}); torch.nn modules need one size")
        first = self.layers[0]
        if not isinstance(first, nn.RNNBase):
            raise TypeError(f"layer 0 is a {type(first).__name__}, not a torch recurrent module (quantized?)")
        s = self.specs[0]
        kwargs = dict(input_size=self.input_size, hidden_size=s.hidden_size, num_layers=self.num_layers, bias=self.bias,
                      batch_first=self.batch_first, dropout=self.dropout, bidirectional=s.bidirectional)
        if self.cell is CellType.LSTM:
            kwargs["proj_size"] = s.proj_size
        if self.cell in (CellType.RNN_TANH, CellType.RNN_RELU):
            kwargs["nonlinearity"] = "relu" if self.cell is CellType.RNN_RELU else "tanh"
        out = _TORCH_CLS[self.cell](**kwargs)
        dst = dict(out.named_parameters())
        with torch.no_grad():
            for k, layer in enumerate(self.layers):
                for name, p in layer.named_parameters():
                    dst[name.replace("_l0", f"_l{k}")].copy_(p)
        return out.to(next(self.parameters()).dtype)
