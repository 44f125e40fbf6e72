"""Column strips within row blocks: the sparse pattern the integer kernel can skip (issue 22).

A weight (rows, cols) = (out, in), e.g. a packed LSTM matrix (4H, I), is cut into row blocks
of `strip_rows` consecutive rows (16 for the kernel). Within a row block every kept column
is kept for all of its rows: the unit of pruning is a strip_rows x 1 strip, so one column
index serves the whole block. The columns are further cut into panels of `panel` columns;
the number of strips a row block keeps in a panel is a multiple of `multiple` (4: the
kernel gathers inputs four at a time), or the whole panel at a matrix edge narrower than
that. Different row blocks and panels keep different counts: the pruned fraction is
about `sparsity` over the whole matrix.

    keep = strip_mask(scores, sparsity=0.75)        # scores (rows, cols) >= 0, e.g. OBS saliency
    strip_scores(scores)                            # (rows, cols): each weight's strip mean

Choice: the score of a strip is the sum of its weights' scores (for OBS saliency
w^2 / [H^-1]_jj the output error of removing the strip, since the rows share H). Within
each (row block, panel) the strips are ranked; consecutive groups of `multiple` form
chunks, scored by their sum, and the best chunks over the whole matrix are kept until
(1 - sparsity) of the weights are kept. Chunks of one panel are ranked best first, so the
kept chunks of a panel are always its best ones.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _pad_rows(scores: Tensor, strip_rows: int) -> tuple[Tensor, Tensor]:
    """(strip sums (blocks, cols), real rows per block (blocks,)) of a (rows, cols) score matrix."""
    R, C = scores.shape
    pad = (-R) % strip_rows
    padded = torch.cat([scores.float(), scores.new_zeros(pad, C, dtype=torch.float32)])
    real = torch.cat([torch.ones(R), torch.zeros(pad)]).view(-1, strip_rows).sum(1)
    return padded.view(-1, strip_rows, C).sum(1), real


def strip_scores(scores: Tensor, strip_rows: int = 16) -> Tensor:
    """(rows, cols): every weight gets the mean score of its strip (for a global threshold)."""
    sums, real = _pad_rows(scores, strip_rows)  # (blocks, cols), (blocks,)
    means = sums / real.unsqueeze(1)
    return means.repeat_interleave(strip_rows, 0)[:scores.shape[0]]


def check_strip_shape(strip_rows: int, panel: int, multiple: int) -> None:
    if strip_rows < 1 or panel < 1 or multiple < 1:
        raise ValueError(f"strip_rows, panel and multiple must be >= 1, got {strip_rows}, {panel}, {multiple}")
    if panel % multiple:
        raise ValueError(f"the panel width ({panel}) must be a multiple of the kept-count multiple ({multiple})")


def strip_mask(scores: Tensor, sparsity: float, strip_rows: int = 16, panel: int = 64, multiple: int = 4) -> Tensor:
    """Bool keep mask (rows, cols) in the strip pattern pruning about `sparsity` (module doc)."""
    check_strip_shape(strip_rows, panel, multiple)
    R, C = scores.shape
    sums, real_rows = _pad_rows(scores, strip_rows)  # (blocks, cols), (blocks,)
    nb, pc = sums.shape[0], (-C) % panel
    vals = torch.cat([sums, sums.new_full((nb, pc), float("-inf"))], 1).view(nb, -1, panel)  # (blocks, panels, panel)
    ranked, order = vals.sort(dim=2, descending=True, stable=True)  # padding (-inf) ranks last
    real = torch.isfinite(ranked)
    chunk_score = ranked.where(real, torch.zeros(())).view(nb, -1, panel // multiple, multiple).sum(3)
    chunk_cols = real.view(nb, -1, panel // multiple, multiple).sum(3)  # (blocks, panels, chunks)
    chunk_weights = (chunk_cols * real_rows.view(nb, 1, 1)).reshape(-1)
    best = torch.sort(chunk_score.reshape(-1), descending=True, stable=True).indices
    budget = round((1.0 - sparsity) * R * C)
    kept_chunks = torch.zeros(best.numel(), dtype=torch.bool)
    kept_chunks[best[chunk_weights[best].cumsum(0) <= budget]] = True
    kept_ranked = kept_chunks.view(nb, -1, panel // multiple, 1).expand(-1, -1, -1, multiple).reshape(vals.shape)
    keep = torch.zeros_like(kept_ranked).scatter_(2, order, kept_ranked & real)  # back to column order
    keep = keep.view(nb, -1)[:, :C]  # (blocks, cols)
    return keep.repeat_interleave(strip_rows, 0)[:R].contiguous()
