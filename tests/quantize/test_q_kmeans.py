"""1-D k-means weight sharing."""

import pytest
import torch

from rnnslim.quantize.kmeans import KMeansInit, kmeans_1d, kmeans_quantize
from rnnslim.quantize.primitives import (
    Granularity,
    QSpec,
    compute_qparams,
    quantize_dequantize,
)


def _lloyd_bruteforce(x, c, iters):
    for _ in range(iters):
        idx = (x[:, None] - c[None, :]).abs().argmin(1)
        c = torch.stack([x[idx == j].mean() if (idx == j).any() else c[j] for j in range(len(c))])
    return c


def test_matches_bruteforce_lloyd():
    x = torch.randn(2000, dtype=torch.float64)
    cb, idx = kmeans_1d(x, 8, iters=15, init=KMeansInit.LINEAR, tol=0)
    ref = _lloyd_bruteforce(x, torch.linspace(x.min(), x.max(), 8, dtype=torch.float64), 15)
    assert torch.allclose(cb.double(), ref, atol=1e-5)
    assert torch.equal(idx, (x[:, None] - cb.double()[None, :]).abs().argmin(1))


def test_beats_uniform_quantization_at_same_bits():
    w = torch.randn(256, 256) * 0.1  # Gaussian-ish weights
    uniform = quantize_dequantize(w, *compute_qparams(w, QSpec(bits=4, granularity=Granularity.TENSOR)),
                                  QSpec(bits=4, granularity=Granularity.TENSOR))
    shared = kmeans_quantize(w, 16)
    assert (shared - w).pow(2).mean() < 0.5 * (uniform - w).pow(2).mean()
    cb, _ = kmeans_1d(w, 16, init=KMeansInit.QUANTILE)
    assert torch.all(cb[1:] >= cb[:-1])


def test_pin_zero_keeps_pruned_weights_zero():
    w = torch.randn(10000) + 0.5
    w[::2] = 0.0
    cb, idx = kmeans_1d(w, 8, pin_zero=True)
    assert (cb == 0).sum() == 1
    assert torch.all(cb[idx[::2]] == 0)


def _lloyd_chunked(x, c, iters, chunk=100_000):
    """Plain Lloyd iterations (nearest centroid by argmin, means by index_add) in chunks of
    `chunk` values, so a large input never builds one (N, K) matrix."""
    for _ in range(iters):
        idx = torch.cat([(part[:, None] - c[None, :]).abs().argmin(1) for part in x.split(chunk)])
        counts = torch.bincount(idx, minlength=len(c)).double()
        sums = torch.zeros_like(c).index_add_(0, idx, x)
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
    return c


def test_many_weights_match_plain_lloyd():
    # a large input is clustered exactly like the textbook loop (speed is a benchmark's business)
    x = torch.randn(300_000, dtype=torch.float64)
    cb, idx = kmeans_1d(x, 16, iters=6, init=KMeansInit.LINEAR, tol=0)
    ref = _lloyd_chunked(x, torch.linspace(x.min(), x.max(), 16, dtype=torch.float64), 6)
    assert torch.allclose(cb.double(), ref, rtol=0, atol=1e-6)  # cb is float32: 2.4e-7 at |c| < 3
    # nearest centroid, up to the float32 rounding of the returned codebook
    err = (x - cb.double()[idx]).abs()
    best = torch.cat([(part[:, None] - cb.double()[None, :]).abs().min(1).values for part in x.split(100_000)])
    assert bool((err <= best + 1e-6).all())


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        kmeans_1d(torch.randn(10), 1)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_1d(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="empty"):
        kmeans_1d(torch.zeros(0), 2)
