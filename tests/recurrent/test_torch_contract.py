"""zero_state: a zero initial state in the form each recurrent module takes (torch's tensors,
an int8 stack's, a list per layer for layers pruned to different sizes), equal to passing None."""

from __future__ import annotations

import pytest
import torch
from examples_lm import ExamplesWordLM
from torch import nn

from rnnslim.recurrent.torch_contract import TorchContractStack, zero_state


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("make", [lambda: nn.LSTM(4, 6, 2, proj_size=3), lambda: nn.GRU(4, 6, 2, bidirectional=True),
                                  lambda: nn.RNN(4, 6, batch_first=True)], ids=["lstmp", "bigru", "rnn"])
def test_torch_modules_get_torch_shaped_zeros(make):
    torch.manual_seed(0)
    m = make().eval()
    x = torch.randn(3, 5, 4)
    st = zero_state(m, 3 if m.batch_first else 5)
    ref_y, ref_state = m(x)
    y, state = m(x, st)
    assert torch.equal(y, ref_y) and _same(state, ref_state)
    assert _same(zero_state(m.double(), 2), zero_state(m, 2)) and (st[0] if isinstance(st, tuple) else st).dtype == torch.float32


def test_unequal_pruned_layers_get_a_list_and_int8_layers_their_dtype():
    from rnnslim.prune import StructuredPruning, prune_units_
    from rnnslim.quantize.int8 import Int8Config, quantize_int8_

    torch.manual_seed(0)
    m, x = ExamplesWordLM().eval(), torch.randint(0, 30, (5, 2))
    prune_units_(m, StructuredPruning(per_layer={0: 0.5, 1: 0.25}), example_inputs=(x, None))
    assert isinstance(m.rnn, TorchContractStack) and not m.rnn.uniform()
    st = zero_state(m.rnn, 2)
    assert isinstance(st, list) and [s[0].shape for s in st] == [(1, 2, 6), (1, 2, 9)]
    assert torch.equal(m(x, st)[0], m(x, None)[0])
    quantize_int8_(m, Int8Config(mode="dynamic"))  # int8 layers: no float weight, the anchor gives the dtype
    st = zero_state(m.rnn, 2)
    assert st[1][1].dtype == torch.float32 and torch.equal(m(x, st)[0], m(x, None)[0])
