"""Bytes of weights a single batch-1 step reads (the numerator of the bandwidth floor).

PyTorch modules: every parameter and buffer the module holds in memory (tied tensors
once), except embedding tables, of which a lookup reads one row. A table that another
module also uses (tied decoder) is read in full. What a module holds is what it computes
from: a masked dense layer reads its dense weights, a layer that keeps int8 weights reads
bytes, not floats.

ONNX graphs: every initializer and Constant tensor, except the data of a Gather whose
indices come from the inputs (a table lookup), of which one row is read. Runtime-side
prepacking is not visible here; the figure is the graph's own weight bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn


def _own_tensors(mod: nn.Module) -> list:
    return list(mod.parameters(recurse=False)) + list(mod.buffers(recurse=False))


def _lookup_modules(module: nn.Module) -> list[tuple[nn.Module, int | None]]:
    """(module, vocabulary size or None) of every table lookup: torch embeddings, and a
    SequenceModel's `embedding` whatever class holds it (an int8 table, ...)."""
    found: list[tuple[nn.Module, int | None]] = []
    spec = getattr(module, "spec", None)
    table = getattr(module, "embedding", None)
    if table is not None and spec is not None and spec.input_kind.value == "embedding":
        found.append((table, int(spec.input_size)))
    for mod in module.modules():
        if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)) and all(mod is not m for m, _ in found):
            found.append((mod, mod.num_embeddings))
    return found


def module_bytes_per_step(module: nn.Module) -> int:
    tables: dict[int, int] = {}  # id(tensor) -> bytes of one row
    inside_tables: set[int] = set()
    for mod, vocab in _lookup_modules(module):
        for sub in mod.modules():
            inside_tables.add(id(sub))
            for t in _own_tensors(sub):
                if t.dim() >= 1 and t.shape[0] == vocab and vocab:  # one row per token: weights, row scales
                    tables[id(t)] = t.element_size() * (t.numel() // vocab)
    full: dict[int, int] = {}
    for mod in module.modules():
        for t in _own_tensors(mod):
            if id(mod) in inside_tables and id(t) in tables:
                continue
            full[id(t)] = t.numel() * t.element_size()
    rows = sum(b for i, b in tables.items() if i not in full)
    return sum(full.values()) + rows


def onnx_bytes_per_step(path: str | Path) -> int:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    tensors: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(attr.t)
    constant = set(tensors)
    lookups = {node.input[0] for node in graph.node
               if node.op_type == "Gather" and node.input[0] in constant and node.input[1] not in constant}
    total = 0
    for name, arr in tensors.items():
        if name in lookups and arr.ndim >= 1 and arr.shape[0] > 0:
            total += arr.nbytes // arr.shape[0]
        else:
            total += arr.nbytes
    return int(total)
