"""Column strips within row blocks (rnnslim.prune.strips): the pattern holds exactly, the kept
count per (row block, panel) is a multiple of 4, the sparsity is met, and the best strips win."""

import pytest
import torch

from rnnslim.prune.strips import strip_mask, strip_scores


def _blocks(keep: torch.Tensor, rows: int) -> torch.Tensor:
    return keep.view(-1, rows, keep.shape[1])  # (blocks, rows, cols)


@pytest.mark.parametrize("shape", [(64, 200), (48, 64), (37, 130)])
def test_pattern_multiple_and_sparsity(shape):
    torch.manual_seed(0)
    scores = torch.rand(shape)
    keep = strip_mask(scores, 0.75, strip_rows=16, panel=64, multiple=4)
    R, C = shape
    for r0 in range(0, R, 16):  # every row of a block keeps the same columns
        blk = keep[r0:r0 + 16]
        assert bool((blk == blk[:1]).all())
        for c0 in range(0, C, 64):  # kept count per panel: a multiple of 4, or the whole (edge) panel
            k, width = int(blk[0, c0:c0 + 64].sum()), min(64, C - c0)
            assert k % 4 == 0 or k == width
    kept = float(keep.float().mean())
    assert 0.25 - 64 / (R * C) - 1e-6 <= kept <= 0.25  # below the budget by less than one chunk


def test_rows_one_multiple_one_is_the_unstructured_choice():
    torch.manual_seed(1)
    scores = torch.rand(8, 40)
    keep = strip_mask(scores, 0.6, strip_rows=1, panel=40, multiple=1)
    expected = torch.ones(8 * 40, dtype=torch.bool)
    expected[torch.topk(scores.reshape(-1), round(0.6 * 320), largest=False).indices] = False
    assert torch.equal(keep.reshape(-1), expected)


def test_strong_strips_are_kept():
    scores = torch.full((32, 64), 0.01)
    scores[:16, 5] = 10.0  # one strong column in the first block, three more to fill its chunk
    scores[:16, 9] = scores[:16, 11] = scores[:16, 60] = 5.0
    keep = strip_mask(scores, 1 - 4 / 64 / 2, strip_rows=16, panel=64, multiple=4)  # 4 strips of the 2 x 64 kept
    assert keep[0].nonzero().flatten().tolist() == [5, 9, 11, 60]
    assert int(keep[16:].sum()) == 0


def test_strip_scores_are_strip_means():
    scores = torch.arange(32 * 3, dtype=torch.float32).view(32, 3)
    means = strip_scores(scores, 16)
    assert torch.allclose(means[:16], scores[:16].mean(0, keepdim=True).expand(16, 3))
    assert torch.allclose(means[16:], scores[16:].mean(0, keepdim=True).expand(16, 3))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        strip_mask(torch.rand(16, 64), 0.5, panel=64, multiple=5)
