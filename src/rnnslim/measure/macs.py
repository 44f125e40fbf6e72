"""Multiply-accumulates of one time step at batch 1.

Only matrix products count (gate nonlinearities and elementwise products are O(H), not
O(H^2)). Per recurrent layer and direction, with G gates (LSTM 4, GRU 3, RNN 1), input
width I, hidden size H and P = proj_size or H:

    input  G*H*I   +   recurrent  G*H*P   +   projection (LSTM proj_size)  P*H

times D = 2 for bidirectional layers. An embedding lookup costs 0 MACs; a Linear input
projection F*E; the head O*(P*D of the last layer). Non-zero MACs count only the
non-zero weights (what a sparse kernel would have to do).

Swapped-in layers (quantized, factorized, ...) may define `macs_per_step() -> (dense,
nonzero)`; otherwise every stored matrix (>= 2-D, not a mask or scale) of the layer is
taken as one MAC per element, which is right for any layer that multiplies each stored
weight once per step, and the part is marked `estimated`.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from rnnslim.measure.size import is_aux, stored_tensors
from rnnslim.recurrent.cells import direction_weights
from rnnslim.recurrent.gates import CellType, cell_of_module, gate_count
from rnnslim.recurrent.stack import LayerSpec


class MacPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    dense: int
    nonzero: int
    estimated: bool = False


class MacStats(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    parts: list[MacPart]
    dense: int
    nonzero: int
    note: str = ""

    @classmethod
    def of(cls, parts: list[MacPart], note: str = "") -> MacStats:
        return cls(parts=parts, dense=sum(p.dense for p in parts), nonzero=sum(p.nonzero for p in parts), note=note)


def recurrent_layer_macs(cell: CellType | str, input_size: int, spec: LayerSpec) -> int:
    """Dense MACs per step of one (possibly bidirectional, projected) recurrent layer."""
    G, H = gate_count(cell), spec.hidden_size
    P = spec.proj_size or H
    per_direction = G * H * input_size + G * H * P + (P * H if spec.proj_size else 0)
    return per_direction * spec.directions


def _nnz(t: torch.Tensor | None) -> int:
    return 0 if t is None else int(torch.count_nonzero(t))


def torch_rnn_macs(module: nn.RNNBase, name: str = "rnn") -> list[MacPart]:
    """One part per layer of a torch.nn.LSTM/GRU/RNN (any num_layers, bidirectional, proj_size)."""
    cell = cell_of_module(module)
    spec = LayerSpec(module.hidden_size, getattr(module, "proj_size", 0), module.bidirectional)
    parts, in_size = [], module.input_size
    for layer in range(module.num_layers):
        nonzero = 0
        for d in range(spec.directions):
            w = direction_weights(module, layer, d == 1)
            nonzero += _nnz(w.w_ih) + _nnz(w.w_hh) + _nnz(w.w_hr)
        label = f"{name}.l{layer}" if module.num_layers > 1 else name
        parts.append(MacPart(name=f"{label} ({cell.value})", dense=recurrent_layer_macs(cell, in_size, spec), nonzero=nonzero))
        in_size = spec.output_size
    return parts


def _stored_matrix_macs(name: str, module: nn.Module) -> MacPart:
    dense = nonzero = 0
    for tname, t in stored_tensors(module).items():
        if t.dim() >= 2 and not is_aux(tname, t):
            dense += t.numel()
            nonzero += _nnz(t)
    return MacPart(name=name, dense=dense, nonzero=nonzero, estimated=True)


def module_macs(name: str, module: nn.Module) -> list[MacPart]:
    """MACs per step of one building block (recurrent layer, Linear, Embedding or swapped-in layer)."""
    if hasattr(module, "macs_per_step"):
        dense, nonzero = module.macs_per_step()
        return [MacPart(name=name, dense=int(dense), nonzero=int(nonzero))]
    if isinstance(module, nn.RNNBase):
        return torch_rnn_macs(module, name)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return [MacPart(name=f"{name} (lookup)", dense=0, nonzero=0)]
    if isinstance(module, nn.Linear):
        return [MacPart(name=name, dense=module.weight.numel(), nonzero=_nnz(module.weight))]
    return [_stored_matrix_macs(name, module)]


def macs_per_step(model: nn.Module) -> MacStats:
    """MACs of one step at batch 1: per part (input, each recurrent layer, head) and totals."""
    if hasattr(model, "spec") and hasattr(model, "rnn"):
        parts: list[MacPart] = []
        if hasattr(model, "embedding"):  # a lookup whatever module holds the table (int8 tables too)
            parts.append(MacPart(name="embedding (lookup)", dense=0, nonzero=0))
        if hasattr(model, "input_proj"):
            parts += module_macs("input_proj", model.input_proj)
        necks = getattr(model.rnn, "bottlenecks", None)  # low-rank W_ih input factors (rnnslim.lowrank)
        for k, layer in enumerate(model.rnn.layers):
            if necks is not None and not isinstance(necks[k], nn.Identity):
                parts += module_macs(f"rnn.bottlenecks.{k}", necks[k])
            parts += module_macs(f"rnn.layers.{k}", layer)
        if hasattr(model, "decoder_proj"):
            parts += module_macs("decoder_proj", model.decoder_proj)
        parts += module_macs("decoder", model.decoder)
        note = "" if model.spec.readout.value == "all" else f"head counted per step (readout {model.spec.readout.value})"
        return MacStats.of(parts, note)
    return _generic_macs(model)


def _generic_macs(model: nn.Module) -> MacStats:
    """A user module: its recurrent, Linear and Embedding submodules, each applied once per step."""
    if hasattr(model, "macs_per_step"):
        return MacStats.of(module_macs(type(model).__name__, model), "from the module's own macs_per_step()")
    parts: list[MacPart] = []
    counted: list[str] = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.RNNBase, nn.Linear, nn.Embedding, nn.EmbeddingBag)) or hasattr(mod, "macs_per_step"):
            if any(name.startswith(c + ".") for c in counted):  # inside a block already counted
                continue
            counted.append(name)
            parts += module_macs(name or type(mod).__name__, mod)
    return MacStats.of(parts, "user module: recurrent, Linear and Embedding submodules counted once per step; "
                              "other layers (convolutions, attention) are not counted")
