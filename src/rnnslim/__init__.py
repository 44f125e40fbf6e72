"""rnnslim: make trained recurrent models (LSTM, GRU, RNN) smaller and faster.

Public API re-exports only; importing rnnslim does no work and never touches a GPU.
"""

__version__ = "0.1.0"

from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import ModelSpec, SequenceModel
from rnnslim.recurrent.gates import CellType, gate_count, gate_names, unit_rows
from rnnslim.recurrent.stack import LayerSpec, RecurrentStack

__all__ = [
    "CellType",
    "LayerSpec",
    "ModelSpec",
    "RecurrentStack",
    "SequenceModel",
    "gate_count",
    "gate_names",
    "load_model",
    "save_model",
    "unit_rows",
]
