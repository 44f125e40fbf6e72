"""Tiny integer models pruned to 16 x 1 column strips (the pattern of rnnslim_core.h's strips
format, strips.py), for kernel and export tests."""

from __future__ import annotations

import torch
from int8_models import integer_model

PANEL = 64


def strip_mask(R: int, C: int, keep: float, multiple_of_4: bool, seed: int) -> torch.Tensor:
    """(R, C) bool: per block of 16 rows, random whole columns kept (share `keep`); multiple_of_4:
    the kept count of every (16-row block, 64-column panel) rounded down to a multiple of 4 (the
    format's no-padding case); block 1 keeps nothing and block 2 everything (where they exist)."""
    g = torch.Generator().manual_seed(seed)
    nb = -(-R // 16)
    keep_cols = torch.rand(nb, C, generator=g) < keep  # (NB, C)
    if multiple_of_4:
        for b in range(nb):
            for lo in range(0, C, PANEL):
                kept = keep_cols[b, lo:lo + PANEL].nonzero().flatten()
                keep_cols[b, lo + kept[len(kept) - len(kept) % 4:]] = False
    if nb > 2:
        keep_cols[1], keep_cols[2] = False, True
    return keep_cols.repeat_interleave(16, 0)[:R]


def strips_model(cell: str, hidden=(70, 33), keep: float = 0.3, multiple_of_4: bool = False, seed: int = 0,
                 embed: int = 45):
    """integer_model with every matrix (W_ih, W_hh, decoder) pruned to random 16 x 1 strips"""
    q = integer_model(cell, hidden=hidden, seed=seed, embed=embed)
    mats = [getattr(layer, n) for layer in q.rnn.layers for n in ("w_ih", "w_hh")] + [q.decoder.weight]
    with torch.no_grad():
        for k, w in enumerate(mats):
            w.mul_(strip_mask(*w.shape, keep, multiple_of_4, seed + k).to(w.dtype))
    return q
