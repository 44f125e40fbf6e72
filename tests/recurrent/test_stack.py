import pytest
import torch

from rnnslim.recurrent.stack import LayerSpec, RecurrentStack


@pytest.mark.parametrize("cls,kw", [(torch.nn.LSTM, {}), (torch.nn.LSTM, {"proj_size": 3}), (torch.nn.GRU, {}),
                                    (torch.nn.RNN, {"nonlinearity": "relu"})])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_from_torch_and_back(cls, kw, bidirectional):
    m = cls(5, 6, num_layers=3, bidirectional=bidirectional, **kw).eval()
    stack = RecurrentStack.from_torch(m).eval()
    x = torch.randn(7, 2, 5)
    with torch.no_grad():
        y_ref, st_ref = m(x)
        y, st = stack(x)
        assert (y - y_ref).abs().max() <= 1e-6
        back = stack.to_torch().eval()
        y2, _ = back(x)
    assert (y2 - y_ref).abs().max() <= 1e-6
    # per-layer state has torch's single-layer shape and equals the slices of the multi-layer one
    D = 2 if bidirectional else 1
    for k, s in enumerate(st):
        h = s[0] if isinstance(s, tuple) else s
        ref = st_ref[0] if isinstance(st_ref, tuple) else st_ref
        assert torch.allclose(h, ref[k * D:(k + 1) * D], atol=1e-6)


def test_different_hidden_sizes_and_state_carry():
    stack = RecurrentStack("lstm", 4, [LayerSpec(8), LayerSpec(3, bidirectional=True), LayerSpec(5, proj_size=2)]).eval()
    assert not stack.is_uniform()
    x = torch.randn(10, 2, 4)
    with torch.no_grad():
        y_full, st = stack(x, stack.init_state(2))
    assert y_full.shape == (10, 2, 2)
    assert [tuple(s[0].shape) for s in st] == [(1, 2, 8), (2, 2, 3), (1, 2, 2)]
    assert [tuple(s[1].shape) for s in st] == [(1, 2, 8), (2, 2, 3), (1, 2, 5)]
    uni = RecurrentStack("gru", 4, [LayerSpec(8), LayerSpec(3)]).eval()
    with torch.no_grad():
        full, _ = uni(x)
        a, s = uni(x[:4])
        b, _ = uni(x[4:], s)
    assert torch.allclose(torch.cat([a, b]), full, atol=1e-6)
    with pytest.raises(ValueError, match="different shapes"):
        stack.to_torch()


def test_layer_spec_validation():
    with pytest.raises(ValueError):
        LayerSpec(0)
    with pytest.raises(ValueError):
        LayerSpec(4, proj_size=4)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        RecurrentStack("gru", 3, [LayerSpec(4, proj_size=2)])
