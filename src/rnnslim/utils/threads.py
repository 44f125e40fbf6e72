"""Temporarily set torch's intra-op thread count."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int):
    """Batch-1 streaming work (one small matvec per step) is fastest on one thread, and
    multi-threaded OpenMP barriers collapse when the cores are shared; restore afterwards."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
