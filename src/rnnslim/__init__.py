"""rnnslim: make trained recurrent models (LSTM, GRU, RNN) smaller and faster.

Public API re-exports only, imported on first use: importing rnnslim does no work, never
touches a GPU and does not import torch (rnnslim.runtime runs exported models without it).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "rnnslim.io.format",
    "save_model": "rnnslim.io.format",
    "ModelSpec": "rnnslim.models.sequence",
    "SequenceModel": "rnnslim.models.sequence",
    "CellType": "rnnslim.recurrent.gates",
    "gate_count": "rnnslim.recurrent.gates",
    "gate_names": "rnnslim.recurrent.gates",
    "unit_rows": "rnnslim.recurrent.gates",
    "LayerSpec": "rnnslim.recurrent.stack",
    "RecurrentStack": "rnnslim.recurrent.stack",
    # one verb per family, torchao style: rnnslim.prune_(model, Config), rnnslim.quantize_(model, Config)
    "prune_": "rnnslim.prune",
    "quantize_": "rnnslim.quantize.api",
    "StructuredPruning": "rnnslim.prune",
    "UnstructuredPruning": "rnnslim.prune",
    "NMPruning": "rnnslim.prune",
    "BlockPruning": "rnnslim.prune",
    "WeightOnly": "rnnslim.quantize.api",
    "Int8Config": "rnnslim.quantize.int8",
    "set_delta_threshold_": "rnnslim.quantize.int8.delta",  # delta networks on the integer C kernel
    "save_edited": "rnnslim.io.edited",
    "load_edited": "rnnslim.prune.structured.history",  # rnnslim.io.edited with the pruning replay
    # low-rank: SVD of the gate matrices / the head, LSTM -> LSTMP
    "lowrank_": "rnnslim.lowrank",
    "LowRank": "rnnslim.lowrank",
    "to_lstmp_": "rnnslim.lowrank",
    "ToLSTMP": "rnnslim.lowrank",
    "lowrank_linears_": "rnnslim.lowrank",  # nn.Linear layers of any module (a user's decoder, head)
    "LowRankLinears": "rnnslim.lowrank",
    # transform-domain storage: sparse DCT coefficients, block-circulant matrices
    "dct_sparsify_": "rnnslim.transform",
    "block_circulant_": "rnnslim.transform",
    "DCTSparsity": "rnnslim.transform",
    "BlockCirculant": "rnnslim.transform",
    # early exit: heads after each recurrent layer of a classifier, a calibrated confidence threshold
    "EarlyExit": "rnnslim.early_exit",
    "add_exits_": "rnnslim.early_exit",
    "calibrate_exits_": "rnnslim.early_exit",
    "exit_predict": "rnnslim.early_exit",
    # compact students trained by distillation
    "make_student": "rnnslim.students",
    "StudentSpec": "rnnslim.students",
    "search": "rnnslim.search",  # budget-driven recipe search (the module is callable; needs rnnslim[search])
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnslim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
