"""block_circulant_: the projection onto block-circulant matrices and the verb."""

from __future__ import annotations

import pytest
import torch
from transform_models import tiny_model

from rnnslim.io.transform_encoding import circulant_expand, circulant_project
from rnnslim.transform import BlockCirculant, block_circulant_


def _circulant(c: torch.Tensor) -> torch.Tensor:
    """Dense k x k circulant written out by hand: B[i, j] = c[(i - j) mod k]."""
    k = c.numel()
    return torch.stack([torch.stack([c[(i - j) % k] for j in range(k)]) for i in range(k)])


@pytest.mark.parametrize("shape,k", [((8, 12), 4), ((10, 7), 4), ((5, 5), 8)])
def test_projection_is_exact_for_block_circulant_input_and_idempotent(shape, k):
    R, C = shape
    nr, nc = -(-R // k), -(-C // k)
    c = torch.randn(nr, nc, k, dtype=torch.float64)
    full = torch.cat([torch.cat([_circulant(c[a, b]) for b in range(nc)], 1) for a in range(nr)], 0)
    w = full[:R, :C]
    assert torch.equal(circulant_expand(c, shape), w)  # expand = the hand-written definition
    p = circulant_expand(circulant_project(w, k), shape)
    assert torch.allclose(p, w, atol=1e-12)  # exact for a circulant input (partial blocks too)
    x = torch.randn(R, C, dtype=torch.float64)
    once = circulant_expand(circulant_project(x, k), shape)
    assert torch.allclose(circulant_expand(circulant_project(once, k), shape), once, atol=1e-12)


def test_projection_is_the_least_squares_nearest():
    x = torch.randn(12, 16, dtype=torch.float64)
    p = circulant_expand(circulant_project(x, 4), x.shape)
    assert abs(float(((x - p) * p).sum())) < 1e-9  # residual orthogonal to the projection
    for _ in range(5):  # any other block-circulant matrix is farther away
        q = circulant_expand(circulant_project(x, 4) + 0.1 * torch.randn(3, 4, 4, dtype=torch.float64), x.shape)
        assert (x - q).norm() > (x - p).norm()


def test_verb_on_lstm_and_gru(cell):
    m = tiny_model(cell)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    res = block_circulant_(m, BlockCirculant(block=4))
    assert {e["encoding"] for e in m.tensor_encodings.values()} == {"block_circulant"}
    assert set(m.tensor_encodings) == {n for n in before if n.startswith("rnn") and "weight" in n}
    for n, r in res.report["tensors"].items():
        p = dict(m.named_parameters())[n].detach()
        assert torch.allclose(circulant_expand(circulant_project(p, 4), p.shape).float(), p, atol=1e-6)
        assert 0 < r["relative_error"] < 1
    assert abs(res.report["total"]["bytes_fraction"] - 0.25) < 0.02
    assert m.history[-1]["op"] == "block_circulant"
    assert torch.equal(dict(m.named_parameters())["decoder.weight"], before["decoder.weight"])  # not a target


def test_bad_block_is_refused_and_the_model_is_untouched():
    with pytest.raises(ValueError):
        BlockCirculant(block=1)
    m = tiny_model()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    with pytest.raises(ValueError, match="larger than"):
        block_circulant_(m, BlockCirculant(block=200))
    assert all(torch.equal(before[n], p) for n, p in m.named_parameters())
    assert not getattr(m, "tensor_encodings", None)
