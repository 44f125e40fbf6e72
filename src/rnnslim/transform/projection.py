"""Keeping transform-coded weights in their subspace while they train.

    hook = projection_hook(model)          # None when no weight is dct / block_circulant coded
    train(model, task, cfg, hooks=TrainHooks(after_step=[hook]))
    hook.finalize(model)                   # re-quantize: the model equals what save_model stores

After every optimizer step the hook projects each coded weight back (in place, so
nn.LSTM/GRU flat weights stay valid):
- dct: W <- T^-1 (M * T W), M the support of the kept coefficients, fixed when the hook
  is made (the `keep` largest |coefficients| of the weight then). Coefficients train in
  float32 between steps; 8 / 16-bit codes are restored by finalize (and by save_model).
- block_circulant: W <- the nearest block-circulant matrix (the projection is idempotent).

Projecting the weights, not the gradients, is what keeps the structure under AdamW (its
per-element step sizes would leave the subspace even for a projected gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.io.transform_encoding import (
    CIRCULANT,
    DCT,
    block_dct,
    dct_options,
    dct_roundtrip,
    dct_support,
    nearest_circulant,
)


def _coded(model: nn.Module) -> dict[str, dict]:
    """{param name: encoding entry} of the parameters stored dct / block_circulant."""
    params = dict(model.named_parameters())
    encodings = getattr(model, "tensor_encodings", None) or {}
    return {n: e for n, e in encodings.items() if e.get("encoding") in (DCT, CIRCULANT) and n in params}


def _options(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "encoding"}


class ProjectionHook:
    """after_step hook `(model, step)` that projects transform-coded weights (see module doc)."""

    def __init__(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        self.entries = _coded(model)
        self.supports: dict[str, Tensor] = {}  # dct: bool (R, C) kept coefficients
        for name, e in self.entries.items():
            if e["encoding"] == DCT:
                o = dct_options(_options(e), tuple(params[name].shape))
                c = block_dct(params[name].detach().double(), o["block"])
                self.supports[name] = dct_support(c, o["keep"])

    def __len__(self) -> int:
        return len(self.entries)

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int | None = None) -> None:
        params = dict(model.named_parameters())
        for name, e in self.entries.items():
            p = params[name]
            w = p.detach().float()
            if e["encoding"] == DCT:
                block = dct_options(_options(e), tuple(p.shape))["block"]
                mask = self.supports[name].to(p.device)
                p.copy_(block_dct(block_dct(w, block) * mask, block, inverse=True))
            else:
                p.copy_(nearest_circulant(w, e["block"]))

    def finalize(self, model: nn.Module) -> None:
        """Put every coded weight exactly where its stored form puts it (re-quantizes dct codes)."""
        reproject_(model)

    def remove(self) -> None:  # no tensor hooks to drop; the same interface as prune.masks.MaskHook
        pass


def projection_hook(model: nn.Module) -> ProjectionHook | None:
    """A ProjectionHook for `model`, or None when no weight is transform-coded."""
    hook = ProjectionHook(model)
    return hook if len(hook) else None


@torch.no_grad()
def reproject_(model: nn.Module) -> list[str]:
    """Replace every transform-coded weight by what its encoding stores and loads back (the
    rounding of dct codes included); returns the names."""
    params = dict(model.named_parameters())
    for name, e in _coded(model).items():
        p = params[name]
        if e["encoding"] == DCT:
            p.copy_(dct_roundtrip(p.detach(), _options(e)))
        else:
            p.copy_(nearest_circulant(p.detach(), e["block"]))
    return list(_coded(model))
