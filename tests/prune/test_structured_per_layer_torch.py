"""A multi-layer torch LSTM/GRU cut to unequal layer sizes becomes a per-layer stack that is
called like the torch module (state: one torch-shaped entry per layer), saves and replays."""

from __future__ import annotations

import pytest
import torch
from user_models import USER_MODELS, train_briefly

from rnnslim.prune import StructuredPruning, load_edited, prune_units_, save_edited
from rnnslim.recurrent.torch_contract import TorchContractStack


@pytest.mark.parametrize("name", ["word LM, LSTM", "word LM, GRU"])
def test_unequal_cut_keeps_the_interface(tmp_path, name):
    m = train_briefly(USER_MODELS[name], steps=30)
    x = torch.randint(0, 50, (6, 2))
    res = prune_units_(m, StructuredPruning(per_layer={"rnn[0]": 0.25, "rnn[1]": 0.5}), example_inputs=(x,))
    assert res.sizes == {"rnn[0]": (32, 24), "rnn[1]": (32, 16)}
    assert isinstance(m.rnn, TorchContractStack) and not m.rnn.uniform()
    assert [layer.hidden_size for layer in m.rnn.layers] == [24, 16] and m.rnn.hidden_size == 16
    y, state = m(x)
    first = state[0][0] if isinstance(state[0], tuple) else state[0]
    assert isinstance(state, list) and first.shape == (1, 2, 24)
    y2, _ = m(x, state)  # the state goes back in as it came out
    assert y2.shape == y.shape == (6, 2, 50)
    save_edited(m, tmp_path / "e")
    back = load_edited(USER_MODELS[name].make(), tmp_path / "e", example_inputs=(x,))
    assert torch.equal(back(x)[0], y)
