"""Integer models whose matrices are N:M pruned (per row, n kept codes in each group of m columns:
what OBSPruning(pattern="nm") leaves), for the panels format tests (quantize/, export/)."""

from __future__ import annotations

import torch
from int8_models import integer_model


def nm_prune_(q, n: int, m: int, seed: int = 0):
    """Keep the n largest |codes| of every row in each group of m columns (the last group may be
    shorter) of every integer matrix of q, in place."""
    g = torch.Generator().manual_seed(seed)
    mats = [getattr(layer, k) for layer in q.rnn.layers for k in ("w_ih", "w_hh")] + [q.decoder.weight]
    with torch.no_grad():
        for w in mats:
            R, C = w.shape
            score = w.abs().float() + torch.rand(R, C, generator=g)  # random tie breaks
            padded = torch.full((R, -(-C // m) * m), -1.0)
            padded[:, :C] = score
            groups = padded.reshape(R, -1, m)
            keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(n, dim=2).indices, True)
            w.mul_(keep.reshape(R, -1)[:, :C].to(w.dtype))
    return q


def nm_model(cell: str, n: int = 1, m: int = 4, hidden=(70, 33), embed: int = 45, seed: int = 0):
    return nm_prune_(integer_model(cell, hidden=hidden, embed=embed, seed=seed), n, m, seed)
