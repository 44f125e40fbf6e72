"""Row-wise Optimal Brain Surgeon: remove or round weights one input column at a time and
let the columns not yet processed absorb the error (SparseGPT, Frantar & Alistarh 2023;
GPTQ, Frantar et al. 2023; both after Hassibi & Stork's OBS).

For a weight W (rows, cols) whose inputs x (cols,) have the second moment H = E[x x^T],
the output error of a change dW is E||dW x||^2 = sum_rows dw H dw^T: every row is an
independent least-squares problem with the same Hessian H. Walking the columns in order,
when column j is fixed to its target value (0 if pruned, its grid point if quantized) the
optimal update of the remaining columns of each row is

    W[:, j+1:] -= (W[:, j] - target_j) / U[j, j] * U[j, j+1:]

with U the upper Cholesky factor of H^-1 (so one factorisation serves every column).
Columns go in blocks of `block` with lazy updates of the rest, as in the papers.

What each column's target is comes from a `ColumnRule`:
- a pruning mask chosen per block from the OBS saliency w^2 / U[j, j]^2 (unstructured:
  the lowest `sparsity` fraction of the block; strips: the same fraction in whole column
  strips of row blocks, rnnslim.prune.strips, with blocks that hold whole panels; N:M: per
  row in each group of M columns, chosen when the group starts), or a fixed mask (block /
  tile patterns, chosen upfront);
- optionally a quantizer (group-wise grid, parameters chosen when a group starts from the
  weights as updated so far), applied to the kept weights: joint sparse + quantized.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnslim.prune.patterns import nm_mask
from rnnslim.prune.strips import strip_mask


class GridQuantizer:
    """Affine integer grid for one weight matrix, group-wise along the columns.

    qparams(w_group (rows, g)) -> (scale (rows, 1), zero point (rows, 1)); the grid of a
    group is chosen when the walk reaches its first column. `fit` is the rule (min-max or
    MSE clip search, scales rounded to their storage dtype), given by the caller.
    """

    def __init__(self, fit, qmin: int, qmax: int, group_size: int | None) -> None:
        self.fit, self.qmin, self.qmax, self.group_size = fit, qmin, qmax, group_size
        self.scales: list[Tensor] = []
        self.zeros: list[Tensor] = []
        self._s: Tensor | None = None
        self._z: Tensor | None = None

    def start_group(self, w_group: Tensor) -> None:
        s, z = self.fit(w_group)
        self._s, self._z = s.reshape(-1, 1).float(), z.reshape(-1, 1).float()
        self.scales.append(self._s)
        self.zeros.append(self._z)

    def codes(self, w: Tensor) -> Tensor:
        """(rows,) column -> integer levels (float tensor) on the current grid."""
        return torch.clamp(torch.round(w.unsqueeze(1) / self._s) + self._z, self.qmin, self.qmax).squeeze(1)

    def __call__(self, w: Tensor) -> Tensor:
        return ((self.codes(w).unsqueeze(1) - self._z) * self._s).squeeze(1)


@dataclass
class ColumnRule:
    """What each column becomes. sparsity: fraction pruned per block (adaptive mask);
    nm: (n, m) kept per group of m columns; strips: (strip_rows, panel, multiple) makes the
    adaptive mask whole column strips (with `sparsity`); fixed_mask: bool (rows, cols), True = kept;
    quantizer: rounds kept weights; pinned: weights that keep their value while the others
    absorb errors (e.g. each row's largest weight, so a per-row max-based grid is stable).
    With none of them the weights are left as they are."""

    sparsity: float = 0.0
    nm: tuple[int, int] | None = None
    strips: tuple[int, int, int] | None = None  # (strip_rows, panel, multiple), rnnslim.prune.strips
    fixed_mask: Tensor | None = None
    quantizer: GridQuantizer | None = None
    pinned: Tensor | None = None  # bool (rows, cols): weights the compensation never moves


def zeros_kept(w: Tensor) -> Tensor | None:
    """A fixed mask that keeps exact zeros (an earlier pruning) at zero, or None without zeros."""
    zeros = w == 0
    return ~zeros if bool(zeros.any()) else None


def damped(H: Tensor, damp: float) -> Tensor:
    """H + damp * mean(diag H) * I: the relative damping every use of a calibration Hessian shares."""
    return H + damp * torch.diag(H).mean() * torch.eye(H.shape[0], dtype=H.dtype)


def inverse_hessian_factor(H: Tensor, damp: float) -> Tensor:
    """U, the upper Cholesky factor of damped(H)^-1. Inputs that were always zero on the
    calibration data get diagonal 1 first, so their weights are handled alone, by
    magnitude, without compensation; the damping grows tenfold until the factorisation works."""
    H = H.double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    for attempt in range(6):
        L, info = torch.linalg.cholesky_ex(damped(H, damp * 10**attempt))
        if int(info) == 0:
            break
    else:
        raise ValueError("the calibration Hessian is not positive definite even with strong damping")
    return torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True).float()


def _block_mask(W1: Tensor, d: Tensor, rule: ColumnRule, i1: int) -> Tensor:
    """Kept weights (rows, b) of one block from the saliency w^2 / d^2 (unstructured) or the
    fixed mask; N:M masks are chosen column group by column group inside the walk."""
    if rule.fixed_mask is not None:
        return rule.fixed_mask[:, i1:i1 + W1.shape[1]].clone()
    keep = torch.ones_like(W1, dtype=torch.bool)
    if rule.sparsity > 0 and rule.strips is not None:
        return strip_mask(W1.pow(2) / d.pow(2).unsqueeze(0), rule.sparsity, *rule.strips)
    if rule.sparsity > 0 and rule.nm is None:
        sal = (W1.pow(2) / d.pow(2).unsqueeze(0)).reshape(-1)
        n_prune = round(rule.sparsity * sal.numel())
        if n_prune:
            keep.view(-1)[torch.topk(sal, n_prune, largest=False).indices] = False
    return keep


def _restore(view: Tensor, original: Tensor, pinned: Tensor) -> None:
    """Put pinned weights back to their original values (in place, on a view of W)."""
    view[pinned] = original[pinned]


def obs_walk(W: Tensor, H: Tensor, rule: ColumnRule, block: int = 128, damp: float = 0.01,
             segments: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """Prune and/or quantize W (rows, cols) against input second moment H (cols, cols).

    Returns (new W (rows, cols) float32, kept mask (rows, cols) bool). `segments`: column
    offsets where a block must end (so an adaptive mask never spans two tensors that were
    concatenated); group boundaries of the quantizer and strip panels must fall on block
    boundaries too.
    """
    W = W.detach().float().clone()
    original = W.clone()
    rows, cols = W.shape
    U = inverse_hessian_factor(H, damp)
    kept = torch.ones_like(W, dtype=torch.bool)
    g = rule.quantizer.group_size if rule.quantizer is not None else None
    if g and block % g:
        block = g * max(1, block // g)
    if rule.strips is not None and block % rule.strips[1]:  # a block holds whole panels
        block = rule.strips[1] * max(1, block // rule.strips[1])
    cuts = sorted({0, cols, *(segments or []), *range(0, cols, block)})
    for i1, i2 in zip(cuts[:-1], cuts[1:]):
        W1, U1 = W[:, i1:i2].clone(), U[i1:i2, i1:i2]
        Q1, E1 = torch.zeros_like(W1), torch.zeros_like(W1)
        mask1 = _block_mask(W1, torch.diag(U1), rule, i1)
        for i in range(i2 - i1):
            w, d = W1[:, i], U1[i, i]
            if rule.nm is not None and i % rule.nm[1] == 0:
                n, m = rule.nm
                grp = W1[:, i:i + m]
                mask1[:, i:i + m] = nm_mask(grp.pow(2) / torch.diag(U1)[i:i + m].pow(2).unsqueeze(0), n, m)
            if rule.quantizer is not None and ((i1 + i) % (g or cols) == 0):
                rule.quantizer.start_group(W1[:, i:i + (g or cols)] if g else W[:, i1 + i:].clone())
            q = torch.where(mask1[:, i], w, torch.zeros_like(w))
            if rule.quantizer is not None:
                q = torch.where(mask1[:, i], rule.quantizer(q), q)
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) * U1[i, i:].unsqueeze(0)
            E1[:, i] = err
            if rule.pinned is not None:
                _restore(W1[:, i + 1:], original[:, i1 + i + 1:i2], rule.pinned[:, i1 + i + 1:i2])
        W[:, i1:i2] = Q1
        kept[:, i1:i2] = mask1
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
        if rule.pinned is not None:
            _restore(W[:, i2:], original[:, i2:], rule.pinned[:, i2:])
    return W, kept
