"""N:M and block / stripe patterns: the pattern property holds and the right weights go."""

import pytest
import torch

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.dispatch import prune_
from rnnslim.prune.patterns import (
    BlockPruning,
    NMPruning,
    block_mask,
    block_scores,
    nm_mask,
)
from rnnslim.prune.unstructured import Scope


def _model(cell="lstm"):
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=20, embed_size=16,
                     layers=[LayerShape(hidden_size=16), LayerShape(hidden_size=12)], output_size=20)
    return SequenceModel(spec)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8), (1, 2)])
def test_nm_groups_keep_exactly_n(n, m):
    s = torch.rand(24, 32)
    mask = nm_mask(s, n, m)
    groups = mask.view(24, -1, m)
    assert torch.all(groups.sum(-1) == n)
    # the kept ones are the largest of their group
    sg = s.view(24, -1, m)
    assert torch.all(sg.masked_fill(~groups, float("inf")).min(-1).values >= sg.masked_fill(groups, -1).max(-1).values)


def test_nm_partial_last_group():
    s = torch.rand(5, 10)  # groups of 4: [4, 4, 2]
    mask = nm_mask(s, 3, 4)
    assert mask[:, :8].view(5, 2, 4).sum(-1).eq(3).all()
    assert mask[:, 8:].sum(-1).eq(2).all()  # min(N, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_nm_on_a_model_along_the_input_dimension(cell):
    m = _model(cell)
    res = prune_(m, NMPruning(n=2, m=4))
    for name in res.masks:
        w = m.get_parameter(name).detach()
        assert (w.reshape(w.shape[0], -1, 4) != 0).sum(-1).le(2).all(), name
        assert res.report["tensors"][name]["sparsity"] == 0.5
    with pytest.raises(ValueError):
        NMPruning(n=4, m=4)


def test_block_scores_are_rms_per_tile():
    s = torch.arange(24.0).reshape(4, 6)
    tiles, counts = block_scores(s, 2, 4)  # 2 x 2 tiles, the right ones cut to 2 columns
    assert tiles.shape == (2, 2) and counts.tolist() == [[8, 4], [8, 4]]
    torch.testing.assert_close(tiles[1, 1], s[2:4, 4:6].pow(2).mean().sqrt())


def test_block_pattern_zeros_whole_tiles():
    torch.manual_seed(0)
    s = torch.rand(16, 24)
    mask = block_mask(s, 4, 8, 0.5)
    tiles = mask.view(4, 4, 3, 8).permute(0, 2, 1, 3).reshape(12, 32)
    assert torch.all(tiles.all(1) | (~tiles).all(1))  # each tile all kept or all pruned
    assert (~mask).sum() == 0.5 * mask.numel()
    # the pruned tiles have the lowest RMS
    rms, _ = block_scores(s, 4, 8)
    kept = mask[::4, ::8]
    assert rms[~kept].max() <= rms[kept].min()


def test_stripes():
    s = torch.rand(12, 10)
    rows = block_mask(s, 1, None, 0.25)  # whole rows
    assert torch.all(rows.all(1) | (~rows).all(1)) and (~rows.all(1)).sum() == 3
    cols = block_mask(s, None, 1, 0.3)  # whole input columns
    assert torch.all(cols.all(0) | (~cols).all(0)) and (~cols.all(0)).sum() == 3
    with pytest.raises(ValueError, match="cannot both be None"):
        BlockPruning(sparsity=0.5, block_rows=None, block_cols=None)


@pytest.mark.parametrize("scope", list(Scope))
def test_block_pruning_on_a_model(scope):
    m = _model()
    res = prune_(m, BlockPruning(sparsity=0.75, block_rows=4, block_cols=4, scope=scope))
    for name in res.masks:
        w = m.get_parameter(name).detach()
        R, C = w.shape
        tiles = (w != 0).view(R // 4, 4, C // 4, 4).permute(0, 2, 1, 3).reshape(-1, 16)
        assert torch.all(tiles.all(1) | (~tiles).all(1)), name
    tot = res.report["total"]
    assert tot["sparsity"] == pytest.approx(0.75, abs=0.01)
    if scope is Scope.LAYER:
        assert all(r["sparsity"] == 0.75 for r in res.report["tensors"].values())
