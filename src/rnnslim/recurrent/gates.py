"""Gate layouts of PyTorch's packed recurrent weights.

PyTorch stacks the gates of a recurrent cell along dim 0 of `weight_ih`, `weight_hh`,
`bias_ih` and `bias_hh`:

    LSTM: [i | f | g | o]   -> 4 * H rows
    GRU:  [r | z | n]       -> 3 * H rows
    RNN:  [h]               -> 1 * H rows

Hidden unit k therefore owns rows {g * H + k for each gate g}. Every other module asks
this one instead of re-deriving the layout.
"""

from __future__ import annotations

from enum import Enum

import torch


class CellType(str, Enum):
    LSTM = "lstm"
    GRU = "gru"
    RNN_TANH = "rnn_tanh"
    RNN_RELU = "rnn_relu"


_GATES: dict[CellType, tuple[str, ...]] = {
    CellType.LSTM: ("i", "f", "g", "o"),
    CellType.GRU: ("r", "z", "n"),
    CellType.RNN_TANH: ("h",),
    CellType.RNN_RELU: ("h",),
}


def as_cell(cell: CellType | str) -> CellType:
    """Parse a cell name ("lstm", "gru", "rnn_tanh", "rnn_relu"; "rnn" means tanh)."""
    if isinstance(cell, CellType):
        return cell
    name = str(cell).lower()
    if name == "rnn":
        return CellType.RNN_TANH
    try:
        return CellType(name)
    except ValueError:
        allowed = ", ".join(c.value for c in CellType)
        raise ValueError(f"unknown recurrent cell {cell!r}; expected one of: {allowed}") from None


def gate_names(cell: CellType | str) -> tuple[str, ...]:
    return _GATES[as_cell(cell)]


def gate_count(cell: CellType | str) -> int:
    return len(_GATES[as_cell(cell)])


def gate_slice(cell: CellType | str, gate: str, hidden_size: int) -> slice:
    """Rows of the packed weight that belong to one gate, e.g. gate_slice('lstm','f',H)."""
    names = gate_names(cell)
    if gate not in names:
        raise ValueError(f"cell {as_cell(cell).value} has gates {names}, not {gate!r}")
    g = names.index(gate)
    return slice(g * hidden_size, (g + 1) * hidden_size)


def unit_rows(cell: CellType | str, hidden_size: int, units: torch.Tensor | list[int]) -> torch.Tensor:
    """Packed-row indices owned by `units` across all gates, gate-major.

    Returns a LongTensor of length gate_count * len(units):
    [g0 rows of units..., g1 rows of units..., ...] so that `w[unit_rows(...)]` is again a
    valid packed weight for a cell of hidden size len(units).
    """
    units = torch.as_tensor(units, dtype=torch.long)
    if units.numel() and (units.min() < 0 or units.max() >= hidden_size):
        raise IndexError(f"unit index out of range for hidden size {hidden_size}")
    g = gate_count(cell)
    offsets = torch.arange(g, dtype=torch.long).unsqueeze(1) * hidden_size  # (G, 1)
    return (offsets + units.unsqueeze(0)).reshape(-1)


def row_to_unit(cell: CellType | str, hidden_size: int) -> torch.Tensor:
    """For each packed row, the hidden unit it belongs to: shape (G * H,)."""
    g = gate_count(cell)
    return torch.arange(hidden_size).repeat(g)


def row_to_gate(cell: CellType | str, hidden_size: int) -> torch.Tensor:
    """For each packed row, the index of its gate: shape (G * H,)."""
    g = gate_count(cell)
    return torch.arange(g).repeat_interleave(hidden_size)


def torch_mode(cell: CellType | str) -> str:
    """Name used by torch.nn.RNNBase (`mode`)."""
    return {
        CellType.LSTM: "LSTM",
        CellType.GRU: "GRU",
        CellType.RNN_TANH: "RNN_TANH",
        CellType.RNN_RELU: "RNN_RELU",
    }[as_cell(cell)]


def cell_of_module(module: torch.nn.Module) -> CellType:
    """The CellType of a torch.nn.LSTM / GRU / RNN module."""
    if isinstance(module, torch.nn.LSTM):
        return CellType.LSTM
    if isinstance(module, torch.nn.GRU):
        return CellType.GRU
    if isinstance(module, torch.nn.RNN):
        return CellType.RNN_RELU if module.nonlinearity == "relu" else CellType.RNN_TANH
    raise TypeError(f"{type(module).__name__} is not a torch.nn.LSTM, GRU or RNN")
