"""Truncated SVD, the rank an energy fraction needs, and ranks for a parameter budget.

    M (rows, cols) = U S V^T;  rank r keeps  M_r = (U_r S_r) @ V_r^T = left @ right
    energy kept at rank r = sum(S[:r]^2) / sum(S^2)   (= 1 - ||M - M_r||_F^2 / ||M||_F^2)

    sp = spectrum(w)                     # float64 SVD of one matrix
    sp.rank_for(0.9)                     # smallest r keeping >= 90 % of the energy
    left, right = sp.factors(16)         # (rows, 16), (16, cols), float32
    ranks = allocate([Piece(sp, cost=2560, max_rank=400, total=sp.total)], budget=300_000)

`allocate` is the greedy budget split: every piece starts at rank 1, then the unit of rank
with the most energy gained per parameter (S[r]^2 / total / cost) is added while it fits.
Energy is relative to each matrix's own total (a site's, for per-gate pieces), so matrices
of different scales (W_ih, the head) compete on the share of themselves they keep.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Spectrum:
    """Thin SVD of one matrix in float64: u (rows, n), s (n,), vh (n, cols), n = min(rows, cols).
    Data-aware (`m` set): the SVD of M L with G = L L^T the Gram matrix of M's inputs; then
    s^2 is output energy and rank r keeps U_r U_r^T M, the best rank-r M for those inputs."""

    u: Tensor
    s: Tensor
    vh: Tensor
    m: Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.s.numel())

    @property
    def total(self) -> float:
        return float((self.s ** 2).sum())

    def kept(self, r: int) -> float:
        """sum(S[:r]^2): the squared Frobenius norm rank r keeps."""
        return float((self.s[:r] ** 2).sum())

    def energy(self, r: int) -> float:
        return self.kept(r) / self.total if self.total > 0 else 1.0

    def rank_for(self, energy: float) -> int:
        """Smallest rank (>= 1) keeping at least `energy` of the squared singular values."""
        if self.total <= 0:
            return 1
        cum = torch.cumsum(self.s ** 2, 0) / self.total
        return min(int((cum < energy - 1e-12).sum()) + 1, self.n)

    def factors(self, r: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """(left = U_r S_r (rows, r), right = V_r^T (r, cols)) with left @ right = M_r;
        data-aware: (U_r, U_r^T M)."""
        if self.m is not None:
            return self.u[:, :r].to(dtype), (self.u[:, :r].t() @ self.m).to(dtype)
        return (self.u[:, :r] * self.s[:r]).to(dtype), self.vh[:r].to(dtype)


def spectrum(m: Tensor, gram: Tensor | None = None, damping: float = 0.01) -> Spectrum:
    """SVD of `m` (rows, cols); with `gram` (cols, cols) = sum of x x^T over the inputs x that m
    multiplies, or (cols,) = its diagonal (token counts of an embedding), the data-aware SVD
    (class docstring). `damping` adds that fraction of the mean eigenvalue so that input
    directions the calibration data never showed are not dropped outright."""
    m = m.detach().double().cpu()
    if gram is None:
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        return Spectrum(u, s, vh)
    g = gram.detach().double().cpu()
    if g.dim() == 1:
        root = torch.diag((g + damping * g.mean()).clamp_min(0).sqrt())
    else:
        evals, q = torch.linalg.eigh(g)
        evals = evals.clamp_min(0)
        root = q * (evals + damping * evals.mean()).sqrt()  # G + d I = root root^T
    u, s, vh = torch.linalg.svd(m @ root, full_matrices=False)
    return Spectrum(u, s, vh, m)


@dataclass
class Piece:
    """One matrix whose rank the budget chooses: parameters per unit of rank, the largest
    rank allowed, and the energy total its gains are measured against."""

    spectrum: Spectrum
    cost: int
    max_rank: int
    total: float


def allocate(pieces: list[Piece], budget: int) -> list[int]:
    """Ranks (each >= 1) with sum(rank * cost) <= budget, greedily by energy per parameter.
    Raises ValueError when even rank 1 everywhere does not fit."""
    ranks = [1] * len(pieces)
    spent = sum(p.cost for p in pieces)
    if spent > budget:
        raise ValueError(f"rank 1 for every factorized matrix already needs {spent} parameters, more than the "
                         f"{budget} the budget leaves them")

    def gain(i: int) -> float:
        p = pieces[i]
        share = float(p.spectrum.s[ranks[i]] ** 2) / p.total if p.total > 0 else 0.0
        return share / p.cost

    heap = [(-gain(i), i) for i, p in enumerate(pieces) if ranks[i] < min(p.max_rank, p.spectrum.n)]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        p = pieces[i]
        if spent + p.cost > budget:
            continue  # this piece no longer fits; cheaper ones still may
        ranks[i] += 1
        spent += p.cost
        if ranks[i] < min(p.max_rank, p.spectrum.n):
            heapq.heappush(heap, (-gain(i), i))
    return ranks
