"""1-D k-means for weight sharing: a codebook of K values and one index per weight.

Lloyd's algorithm in one dimension needs no distance matrix. With the values sorted once
(O(N log N)), the clusters of sorted centroids are contiguous runs whose boundaries are
the midpoints between neighbouring centroids, so one iteration is a `searchsorted` of K-1
midpoints and K segment means from a prefix sum: O(K log N). Four million weights take
well under a second.

Exact zeros (pruned weights) can pin one centroid to 0.0 so that they stay exactly zero
(sparsity survives weight sharing).
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import Tensor


class KMeansInit(str, Enum):
    LINEAR = "linear"  # evenly spaced between min and max (keeps the rare large weights; Han et al. 2016)
    QUANTILE = "quantile"  # at the quantiles: dense regions get more centroids


def _init_centroids(sorted_x: Tensor, k: int, init: KMeansInit) -> Tensor:
    lo, hi = sorted_x[0], sorted_x[-1]
    if init is KMeansInit.LINEAR:
        return torch.linspace(float(lo), float(hi), k, dtype=torch.float64)
    n = sorted_x.numel()
    pos = ((torch.arange(k, dtype=torch.float64) + 0.5) / k * (n - 1)).round().long()
    return sorted_x[pos].clone()


def kmeans_1d(x: Tensor, clusters: int, iters: int = 30, init: KMeansInit = KMeansInit.LINEAR,
              pin_zero: bool = False, tol: float = 1e-9) -> tuple[Tensor, Tensor]:
    """Cluster the values of `x` (any shape) into `clusters` centroids.

    Returns (codebook (K,) float32 sorted ascending, indices (x.numel(),) int64) with
    codebook[indices] ~ x.flatten(). With pin_zero, one centroid is fixed at exactly 0.0
    (so exact zeros of x decode to exactly 0.0). Empty clusters keep their position.
    """
    if clusters < 2:
        raise ValueError(f"k-means needs at least 2 clusters, got {clusters}")
    flat = x.detach().reshape(-1).double()
    if flat.numel() == 0:
        raise ValueError("cannot cluster an empty tensor")
    if not torch.isfinite(flat).all():
        raise ValueError("k-means input contains NaN or infinite values")
    sx, _ = torch.sort(flat)
    cs = torch.cat([sx.new_zeros(1), sx.cumsum(0)])  # cs[j] = sum of the j smallest values
    c = _init_centroids(sx, clusters, init)
    if pin_zero:
        c[(c.abs()).argmin()] = 0.0
    c, _ = torch.sort(c)
    for _ in range(iters):
        mids = (c[1:] + c[:-1]) / 2  # (K-1,) cluster boundaries
        bounds = torch.cat([sx.new_zeros(1, dtype=torch.long), torch.searchsorted(sx, mids, right=True),
                            torch.tensor([sx.numel()])])  # (K+1,) start of each run in sorted order
        counts = (bounds[1:] - bounds[:-1]).double()
        sums = cs[bounds[1:]] - cs[bounds[:-1]]
        new = torch.where(counts > 0, sums / counts.clamp_min(1), c)
        if pin_zero:
            new[(c == 0).nonzero()[0, 0]] = 0.0
        new, _ = torch.sort(new)
        moved = (new - c).abs().max().item()
        c = new
        if moved <= tol * max(1.0, float(sx[-1] - sx[0])):
            break
    mids = (c[1:] + c[:-1]) / 2
    idx = torch.searchsorted(mids, flat, right=False)  # nearest centroid; a value on a midpoint goes to the lower one, as in the loop
    return c.float(), idx


def kmeans_quantize(x: Tensor, clusters: int, **kw) -> Tensor:
    """x replaced by its nearest centroid (same shape and dtype)."""
    codebook, idx = kmeans_1d(x, clusters, **kw)
    return codebook[idx].reshape(x.shape).to(x.dtype)
