"""Pruning masks that keep holding while a model trains, and sparse storage marks.

A mask is a bool tensor of the parameter's shape (True = keep), keyed by parameter name.
Masks are applied *in place* on the existing Parameter objects (never `p.data = ...`,
never torch.nn.utils.prune / parametrizations). That is what keeps nn.LSTM/nn.GRU working:

- nn.RNNBase keeps `_flat_weights`, a list of references to its weight Parameters. On
  CUDA, flatten_parameters() makes each Parameter a view into one contiguous cuDNN weight
  buffer. `p.masked_fill_(...)` writes through the same storage, so both the flat list and
  the cuDNN buffer see the masked values without re-flattening. Re-registering parameters
  (torch.nn.utils.prune) or parametrizing them leaves `_flat_weights` pointing at stale
  tensors: weights then silently stop training or the mask stops applying.
- The optimizer updates the same Parameter objects in place (foreach/fused AdamW too).

`MaskHook` (for rnnslim.train.TrainHooks.after_step) re-applies the masks after every
optimizer step and, from its first call on, also zeroes the gradients of pruned weights
(a tensor hook), so gradient clipping and AdamW's moments ignore them from then on.
Pruned weights are exactly zero after every step; kept weights train normally.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rnnslim.io.sparse_encoding import (
    SPARSE_ENCODINGS,
    SparseFormat,
    choose_format,
    encoded_nbytes,
    nonzero_mask,
)

Masks = dict[str, Tensor]


def masks_from_model(model: nn.Module) -> Masks:
    """Masks (weight != 0) of the parameters the model marks as pruned: those whose
    model.tensor_encodings entry is a sparse encoding, and the float (QAT) weights `P.W` of a
    pruned weight that was quantized, whose codes `P.qweights.W.codes` carry `pruned: true`
    (rnnslim.quantize.storage; the quantized layer is being trained on its frozen grid)."""
    encodings = getattr(model, "tensor_encodings", None) or {}
    params = dict(model.named_parameters())
    out = {}
    for name, opts in encodings.items():
        if opts.get("encoding") in SPARSE_ENCODINGS and name in params:
            out[name] = nonzero_mask(params[name].detach())
        elif opts.get("pruned") and name.endswith(".codes") and ".qweights." in name:
            path, _, wname = name.removesuffix(".codes").rpartition(".qweights.")
            latent = f"{path}.{wname}"
            if latent in params:
                out[latent] = nonzero_mask(params[latent].detach())
    return out


def mask_of(p: Tensor) -> Tensor:
    """Bool mask of the non-zero entries of one tensor."""
    return nonzero_mask(p.detach())


def _check(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    out = {}
    for name, m in masks.items():
        if name not in params:
            raise KeyError(f"mask for {name!r}, but the model has no such parameter")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, the parameter {tuple(params[name].shape)}")
        out[name] = params[name]
    return out


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned entries in place (keeps nn.LSTM flat weights valid, see module doc)."""
    for name, p in _check(model, masks).items():
        p.masked_fill_(~masks[name].to(p.device, torch.bool), 0)


class MaskHook:
    """after_step hook: re-apply masks in place and zero pruned gradients (see module doc).

    `update(masks)` swaps the masks (gradual pruning); `remove()` drops the gradient hooks.
    """

    def __init__(self, masks: Masks) -> None:
        self.masks: Masks = {}
        self._pruned: dict[tuple[str, torch.device], Tensor] = {}  # ~mask per device, cached
        self._handles: list = []
        self._attached: dict[int, weakref.ref] = {}  # id(param) -> weak ref, to attach once
        self.update(masks)

    def update(self, masks: Masks) -> None:
        self.masks = {n: m.detach().to(torch.bool) for n, m in masks.items()}
        self._pruned.clear()

    def _pruned_on(self, name: str, device: torch.device) -> Tensor:
        key = (name, device)
        if key not in self._pruned:
            self._pruned[key] = ~self.masks[name].to(device)
        return self._pruned[key]

    def _grad_hook(self, name: str):
        def hook(grad: Tensor) -> Tensor:
            if name not in self.masks:
                return grad
            return grad.masked_fill(self._pruned_on(name, grad.device), 0)

        return hook

    def attach(self, model: nn.Module) -> None:
        """Register the gradient hooks on `model`'s masked parameters (idempotent)."""
        for name, p in _check(model, self.masks).items():
            ref = self._attached.get(id(p))
            if ref is None or ref() is not p:
                self._handles.append(p.register_hook(self._grad_hook(name)))
                self._attached[id(p)] = weakref.ref(p)

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int | None = None) -> None:
        self.attach(model)
        for name, p in _check(model, self.masks).items():
            p.masked_fill_(self._pruned_on(name, p.device), 0)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._attached.clear()


def mask_hook(masks: Masks, model: nn.Module | None = None) -> MaskHook:
    """A TrainHooks.after_step callable `(model, step)` that keeps `masks` holding.

    Pass `model` to attach the gradient hooks before the first step (otherwise they are
    attached at the first call; the weights are exact zeros after every step either way).
    """
    hook = MaskHook(masks)
    if model is not None:
        hook.attach(model)
        hook(model, 0)
    return hook


def mark_sparse_(model: nn.Module, names: Iterable[str], fmt: SparseFormat | str = SparseFormat.AUTO) -> dict[str, str]:
    """Mark pruned tensors for sparse storage in model.tensor_encodings; returns {name: stored as}.

    AUTO picks the smallest of dense / bitmap / CSR at save time. An explicit BITMAP or CSR
    is used where it is smaller than dense; elsewhere the tensor is marked sparse_auto, so
    it is stored dense but stays marked as pruned (masks_from_model still finds it).
    Tensors that already carry another encoding (quantized, or dense with options such as
    a storage dtype) are left alone and reported as "kept <encoding>".
    """
    fmt = SparseFormat(fmt)
    encodings = getattr(model, "tensor_encodings", None)
    if encodings is None:
        encodings = model.tensor_encodings = {}
    params = dict(model.named_parameters())
    out = {}
    for name in names:
        if name not in params:
            raise KeyError(f"cannot mark {name!r} sparse: the model has no such parameter")
        entry = encodings.get(name, {"encoding": "dense"})
        current = entry.get("encoding", "dense")
        if current not in SPARSE_ENCODINGS and (current != "dense" or len(entry) > 1):
            out[name] = f"kept {current}" + (f" {({k: v for k, v in entry.items() if k != 'encoding'})}"
                                             if len(entry) > 1 else "")
            continue
        t = params[name].detach().cpu()
        chosen = fmt.value
        if fmt is not SparseFormat.AUTO and encoded_nbytes(t, fmt.value) >= encoded_nbytes(t, "dense"):
            chosen = SparseFormat.AUTO.value
        encodings[name] = {"encoding": chosen}
        out[name] = choose_format(t) if chosen == SparseFormat.AUTO.value else chosen
    return out


def sparsity_report(model: nn.Module, names: Iterable[str]) -> dict:
    """{"tensors": {name: {shape, numel, nonzero, sparsity}}, "total": {...}} over `names`."""
    params = dict(model.named_parameters())
    tensors, numel, nnz = {}, 0, 0
    for name in names:
        p = params[name].detach()
        n, z = p.numel(), int(nonzero_mask(p).sum())
        tensors[name] = {"shape": list(p.shape), "numel": n, "nonzero": z, "sparsity": 1.0 - z / n if n else 0.0}
        numel, nnz = numel + n, nnz + z
    total_params = sum(p.numel() for p in params.values())
    total_nnz = sum(int(nonzero_mask(p.detach()).sum()) for p in params.values())
    return {"tensors": tensors,
            "total": {"numel": numel, "nonzero": nnz, "sparsity": 1.0 - nnz / numel if numel else 0.0},
            "model": {"params": total_params, "nonzero": total_nnz}}
