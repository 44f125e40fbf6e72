"""The row-wise OBS walk: exact patterns, grids, and less output error than not compensating."""

import torch

from rnnslim.reconstruct.obs import ColumnRule, GridQuantizer, obs_walk


def _correlated(cols=32, n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    # (n, cols) strongly correlated inputs: 12 latent factors plus a little noise
    X = torch.randn(n, 12, generator=g) @ torch.randn(12, cols, generator=g) + 0.1 * torch.randn(n, cols, generator=g)
    return X, X.t() @ X / n


def _out_err(W, Wn, X):
    return float(((W - Wn) @ X.t()).pow(2).mean())


def test_identity_hessian_is_magnitude_pruning_without_updates():
    W = torch.randn(8, 16)
    new, kept = obs_walk(W, torch.eye(16), ColumnRule(sparsity=0.5), block=16)
    assert int((~kept).sum()) == 64
    assert torch.equal(new, W * kept)  # nothing to compensate with uncorrelated inputs
    assert float(W[~kept].abs().max()) <= float(W[kept].abs().min())


def test_compensation_beats_plain_pruning_on_correlated_inputs():
    X, H = _correlated()
    W = torch.randn(12, 32)
    new, kept = obs_walk(W, H, ColumnRule(sparsity=0.6), block=8)
    assert int((new[~kept] != 0).sum()) == 0
    assert abs(float((~kept).float().mean()) - 0.6) < 0.02
    magnitude = W * (W.abs() >= W.abs().flatten().kthvalue(int(0.6 * W.numel())).values)
    assert _out_err(W, new, X) < 0.5 * _out_err(W, magnitude, X)


def test_nm_pattern_and_fixed_mask():
    X, H = _correlated()
    W = torch.randn(6, 32)
    new, kept = obs_walk(W, H, ColumnRule(nm=(2, 4)))
    assert torch.equal(kept.view(6, 8, 4).sum(-1), torch.full((6, 8), 2))
    fixed = torch.rand(6, 32) > 0.3
    new, kept = obs_walk(W, H, ColumnRule(fixed_mask=fixed))
    assert torch.equal(kept, fixed) and int((new[~fixed] != 0).sum()) == 0


def _minmax(w):
    amax = w.abs().amax(1, keepdim=True).clamp_min(1e-8)
    return amax / 1, torch.zeros_like(amax)  # int2 symmetric: levels -1, 0, 1


def test_quantized_columns_lie_on_the_grid_and_beat_rounding():
    X, H = _correlated()
    W = torch.randn(10, 32)
    q = GridQuantizer(_minmax, -1, 1, group_size=8)
    new, _ = obs_walk(W, H, ColumnRule(quantizer=q), block=16)
    s = torch.cat(q.scales, 1).repeat_interleave(8, 1)
    levels = new / s
    assert torch.allclose(levels, levels.round(), atol=1e-5) and float(levels.abs().max()) <= 1 + 1e-5
    rtn_scale = W.view(10, 4, 8).abs().amax(-1, keepdim=True)
    rtn = (torch.round(W.view(10, 4, 8) / rtn_scale).clamp(-1, 1) * rtn_scale).view(10, 32)
    assert _out_err(W, new, X) < _out_err(W, rtn, X)
