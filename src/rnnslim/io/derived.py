"""Buffers a module computes from its stored ones (e.g. the integer layers' lookup tables and
requantization multipliers): not written to model files, so an artifact holds each fact once.

A module lists them with `derived_buffers() -> {name: tensor}` (registered persistent=False).
Files written before a buffer became derived still hold it: such a file loads when the stored
value equals the recomputed one, and is refused otherwise (loading it would change the model).
"""

from __future__ import annotations

import torch
from torch import nn


def derived_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full names -> values of every derived buffer of `model`."""
    out = {}
    for path, mod in model.named_modules():
        fn = getattr(mod, "derived_buffers", None)
        if callable(fn):
            out.update({f"{path}.{n}" if path else n: t for n, t in fn().items()})
    return out


def split_derived(model: nn.Module, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(tensors to load, stored copies of derived buffers: an older file's)."""
    names = derived_tensors(model).keys()
    return ({k: v for k, v in tensors.items() if k not in names}, {k: v for k, v in tensors.items() if k in names})


def check_derived(model: nn.Module, stored: dict[str, torch.Tensor]) -> None:
    """Raise ValueError naming the first stored derived buffer that differs from the recomputed one."""
    now = derived_tensors(model)
    for k, v in stored.items():
        if v.shape != now[k].shape or not torch.equal(v.to(now[k].dtype), now[k].cpu()):
            raise ValueError(f"tensor {k} differs from the value the model derives from its other tensors "
                             "(a file edited by hand or written by another tool); it cannot be loaded unchanged")
