"""Tiny integer models pruned 2:4 (the pattern of rnnslim_core.h's 2:4 format), for kernel and export tests."""

from __future__ import annotations

import torch
from int8_models import integer_model


def nm24_model(cell: str, hidden=(70, 33), seed: int = 0):
    """integer_model with every matrix pruned 2:4 (the largest two of each group of 4 columns kept)"""
    q = integer_model(cell, hidden=hidden, seed=seed)
    mats = [getattr(layer, n) for layer in q.rnn.layers for n in ("w_ih", "w_hh")] + [q.decoder.weight]
    with torch.no_grad():
        for w in mats:
            R, C = w.shape
            cp = -(-C // 4) * 4
            a = torch.zeros(R, cp)
            a[:, :C] = w.abs().float() + torch.rand(R, C)  # ties broken at random
            rank = a.view(R, cp // 4, 4).argsort(dim=2, descending=True).argsort(dim=2)
            w.mul_((rank < 2).view(R, cp)[:, :C].to(w.dtype))
    return q
