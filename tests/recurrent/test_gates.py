import pytest
import torch

from rnnslim.recurrent.gates import (
    CellType,
    as_cell,
    gate_count,
    gate_slice,
    row_to_gate,
    row_to_unit,
    unit_rows,
)


def test_gate_counts():
    assert gate_count("lstm") == 4 and gate_count("gru") == 3 and gate_count("rnn") == 1


def test_unit_rows_select_a_valid_smaller_cell():
    H = 5
    rows = unit_rows("lstm", H, [1, 3])
    assert rows.tolist() == [1, 3, 6, 8, 11, 13, 16, 18]
    assert (row_to_unit("lstm", H)[rows] == torch.tensor([1, 3] * 4)).all()
    assert (row_to_gate("lstm", H)[rows] == torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).all()
    assert gate_slice("gru", "n", H) == slice(10, 15)


def test_slicing_units_equals_smaller_torch_cell():
    """Keeping units [0, 2] of every gate gives exactly the smaller GRU's computation."""
    big = torch.nn.GRU(3, 4)
    keep = torch.tensor([0, 2])
    small = torch.nn.GRU(3, 2)
    rows = unit_rows("gru", 4, keep)
    with torch.no_grad():
        small.weight_ih_l0.copy_(big.weight_ih_l0[rows])
        small.weight_hh_l0.copy_(big.weight_hh_l0[rows][:, keep])
        small.bias_ih_l0.copy_(big.bias_ih_l0[rows])
        small.bias_hh_l0.copy_(big.bias_hh_l0[rows])
        # zero the removed units' recurrent contributions in the big model
        mask = torch.zeros(4, dtype=torch.bool)
        mask[keep] = True
        big.weight_hh_l0[:, ~mask] = 0
        x = torch.randn(6, 1, 3)
        y_big, _ = big(x)
        y_small, _ = small(x)
    assert torch.allclose(y_big[..., keep], y_small, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        as_cell("transformer")
    with pytest.raises(IndexError):
        unit_rows("lstm", 3, [3])
    assert as_cell("rnn") is CellType.RNN_TANH
