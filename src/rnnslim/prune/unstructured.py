"""Unstructured (per-weight) pruning, one-shot: keep the highest-scoring weights.

    result = prune_unstructured_(model, UnstructuredPruning(sparsity=0.9), calibration=task)

scope LAYER: every targeted tensor gets exactly round(sparsity * numel) zeros.
scope GLOBAL: one threshold over all targeted tensors together (round(sparsity * total)
zeros overall), so tensors with many unimportant weights end up sparser than others.
Weights already pruned in `existing` masks stay pruned (sparsity never goes down), which is
what gradual pruning relies on. Gradual AGP pruning with fine-tuning is in gradual.py.
"""

from __future__ import annotations

from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rnnslim.prune.common import PruneResult, finish, score_targets
from rnnslim.prune.importance import Criterion, Scores
from rnnslim.prune.masks import Masks
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind
from rnnslim.utils.atomic import atomic_verb
from rnnslim.verbs import Family, register


class Scope(str, Enum):
    LAYER = "layer"  # same sparsity in every targeted tensor
    GLOBAL = "global"  # one threshold across all targeted tensors


class UnstructuredPruning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sparsity: float = Field(ge=0.0, lt=1.0, description="fraction of the targeted weights set to zero")
    criterion: Criterion = Criterion.MAGNITUDE
    scope: Scope = Scope.LAYER
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = Field(default=None, description="only these recurrent layers (None = all)")
    calibration_batches: int = Field(default=8, ge=1, description="batches for data-driven criteria")


def _ranked(scores: Tensor, existing: Tensor | None) -> Tensor:
    """Flattened scores where already-pruned weights rank below everything else."""
    flat = scores.reshape(-1).float()
    if existing is not None:
        flat = flat.masked_fill(~existing.reshape(-1).to(flat.device, torch.bool), float("-inf"))
    return flat


def _keep_top(flat: Tensor, keep: int) -> Tensor:
    """Bool (numel,) with exactly `keep` True entries at the largest values."""
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask


def _keep_count(numel: int, sparsity: float, already_kept: int | None) -> int:
    keep = numel - round(sparsity * numel)
    return keep if already_kept is None else min(keep, already_kept)


def layer_masks(scores: Scores, sparsity: float, existing: Masks | None = None) -> Masks:
    """Per tensor: prune exactly round(sparsity * numel) of the lowest scores."""
    out = {}
    for name, s in scores.items():
        old = existing.get(name) if existing else None
        keep = _keep_count(s.numel(), sparsity, None if old is None else int(old.sum()))
        out[name] = _keep_top(_ranked(s, old), keep).reshape(s.shape).cpu()
    return out


def global_masks(scores: Scores, sparsity: float, existing: Masks | None = None) -> Masks:
    """One threshold over all tensors: prune round(sparsity * total) of the lowest scores."""
    names = list(scores)
    olds = [existing.get(n) if existing else None for n in names]
    flat = torch.cat([_ranked(scores[n], o).cpu() for n, o in zip(names, olds)])
    kept = None if all(o is None for o in olds) else sum(
        int(o.sum()) if o is not None else scores[n].numel() for n, o in zip(names, olds))
    mask = _keep_top(flat, _keep_count(flat.numel(), sparsity, kept))
    out, start = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = mask[start:start + k].reshape(scores[n].shape)
        start += k
    return out


def select_masks(scores: Scores, sparsity: float, scope: Scope | str = Scope.LAYER,
                 existing: Masks | None = None) -> Masks:
    return (global_masks if Scope(scope) is Scope.GLOBAL else layer_masks)(scores, sparsity, existing)


@register(Family.PRUNE, UnstructuredPruning)
@atomic_verb
def prune_unstructured_(model: nn.Module, cfg: UnstructuredPruning, calibration=None,
                        existing: Masks | None = None) -> PruneResult:
    """Prune `model` in place; `calibration` (Task or batches) for taylor/fisher/activation."""
    names, scores = score_targets(model, cfg.criterion, cfg.targets, cfg.layers, calibration, cfg.calibration_batches)
    masks = select_masks(scores, cfg.sparsity, cfg.scope, existing)
    method = {"method": "unstructured", "criterion": cfg.criterion.value, "scope": cfg.scope.value,
              "target_sparsity": cfg.sparsity, "targets": [t.value for t in cfg.targets]}
    return finish(model, masks, method)
