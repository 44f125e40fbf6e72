"""Second-order one-shot pruning with weight reconstruction (SparseGPT for recurrent nets).

    prune_obs_(model, OBSPruning(sparsity=0.7), calibration=task)
    prune_obs_(model, OBSPruning(pattern="nm", n=2, m=4), calibration=task)
    prune_obs_(model, OBSPruning(pattern="block", sparsity=0.8, block_rows=4, block_cols=4), calibration=task)
    prune_obs_(model, OBSPruning(pattern="strips", sparsity=0.75), calibration=task)   # the int8 kernel's strips

Every targeted weight (LSTM/GRU/RNN weight_ih, weight_hh, weight_hr; the decoder) is pruned
row by row with the OBS update of obs.py against the second moment of its real inputs
(x_t, h_{t-1}, o*tanh(c), decoder features) collected on calibration batches, layer after
layer in forward order so that later layers absorb earlier layers' errors. The zeros are
exact: follow with `finetune` to recover more (the masks are kept), and stored sparse.

scope LAYER: each tensor gets the requested sparsity. scope GLOBAL: per-tensor sparsities
come from one threshold on the OBS saliency w^2 / [H^-1]_jj over all targets, then each
tensor is reconstructed at its sparsity (strips: the threshold is over strip saliencies).

pattern "strips" (rnnslim.prune.strips): 16 x 1 column strips within row blocks, the kept
count per (16-row block, 64-column panel) a multiple of 4, as the integer kernel skips
them. Unlike "block" (tiles chosen once from the dense weights), the strips are chosen
inside the walk, lazy block by lazy block, from the summed saliency of each strip's rows
in the weights as already updated: the choice sees the compensation so far.

Embeddings are not handled (their one-hot inputs leave nothing to compensate; use `prune`
with criterion activation).
"""

from __future__ import annotations

from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from rnnslim.prune.common import PruneResult, finish
from rnnslim.prune.importance import as_calibration
from rnnslim.prune.patterns import block_mask
from rnnslim.prune.strips import strip_scores
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind, refuse_transform_coded, target_names
from rnnslim.prune.unstructured import Scope
from rnnslim.reconstruct.hessian import collect_hessians
from rnnslim.reconstruct.obs import ColumnRule, damped
from rnnslim.reconstruct.sequential import reconstruct_weights_
from rnnslim.verbs import Family, register


class OBSPattern(str, Enum):
    UNSTRUCTURED = "unstructured"
    NM = "nm"  # N of every M consecutive inputs of a row kept
    BLOCK = "block"  # whole block_rows x block_cols tiles pruned
    STRIPS = "strips"  # strip_rows x 1 column strips, chosen inside the walk (rnnslim.prune.strips)


class OBSPruning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sparsity: float = Field(default=0.5, ge=0.0, lt=1.0, description="unstructured / block: fraction pruned")
    pattern: OBSPattern = OBSPattern.UNSTRUCTURED
    n: int = Field(default=2, ge=1, description="N:M only")
    m: int = Field(default=4, ge=2, description="N:M only")
    block_rows: int | None = Field(default=4, ge=1, description="block only")
    block_cols: int | None = Field(default=4, ge=1, description="block only")
    strip_rows: int = Field(default=16, ge=1, le=4096, description="strips only: rows sharing their kept columns")
    strip_panel: int = Field(default=64, ge=1, le=65536, description="strips only: columns per panel")
    strip_multiple: int = Field(default=4, ge=1, le=65536,
                                description="strips only: kept strips per (row block, panel) a multiple of this")
    scope: Scope = Scope.LAYER
    max_tensor_sparsity: float = Field(default=0.98, gt=0.0, le=1.0,
                                       description="scope global: no tensor pruned past this fraction")
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = None
    calibration_batches: int = Field(default=32, ge=1, description="batches of 16 x 64 tokens")
    damp: float = Field(default=0.01, gt=0, description="added to H's diagonal, times its mean")
    block: int = Field(default=128, ge=1, description="columns per lazy-update block")
    sequential: bool = Field(default=True, description="re-collect each layer's inputs after pruning the previous")

    @model_validator(mode="after")
    def _check(self) -> OBSPruning:
        if TargetKind.EMBEDDING in self.targets:
            raise ValueError("second-order pruning does not handle embeddings (one-hot inputs leave nothing to "
                             "compensate); prune them with `prune` (criterion activation)")
        if self.pattern is OBSPattern.NM and self.n >= self.m:
            raise ValueError(f"N:M needs N < M, got {self.n}:{self.m}")
        if self.pattern is OBSPattern.BLOCK and self.block_rows is None and self.block_cols is None:
            raise ValueError("block_rows and block_cols cannot both be None")
        if self.pattern is OBSPattern.STRIPS and self.strip_panel % self.strip_multiple:
            raise ValueError(f"strip_panel ({self.strip_panel}) must be a multiple of strip_multiple "
                             f"({self.strip_multiple}): each panel keeps a multiple of it")
        return self


def obs_saliency(w: Tensor, H: Tensor, damp: float) -> Tensor:
    """w^2 / [H^-1]_jj (rows, cols): the output error of removing each weight alone."""
    d = torch.diag(torch.linalg.inv(damped(H.double(), damp))).float()
    return w.pow(2) / d.unsqueeze(0)


def _global_sparsities(model: nn.Module, names: list[str], cal, cfg: OBSPruning) -> dict[str, float]:
    """Per-tensor sparsity from one saliency threshold over every target (dense model's inputs), no
    tensor past cfg.max_tensor_sparsity: saliencies are not comparable enough across tensors to let one
    threshold empty a whole matrix (charlstm-512x2's embedding-fed weight_ih_l0 went to 100 % and the
    loss +220 % without the cap); what a capped tensor cannot take moves to the others."""
    hs = collect_hessians(model, cal.batches, names, cal.stateful)
    weights = {n: model.get_parameter(n).detach().float() for n in names}
    sal = {n: obs_saliency(w.reshape(w.shape[0], -1), hs[n], cfg.damp) for n, w in weights.items()}
    if cfg.pattern is OBSPattern.STRIPS:  # strips go together: rank them by their mean saliency
        sal = {n: strip_scores(s, cfg.strip_rows) for n, s in sal.items()}
    return capped_threshold_sparsities(sal, cfg.sparsity, cfg.max_tensor_sparsity)


def capped_threshold_sparsities(sal: dict[str, Tensor], sparsity: float, cap: float) -> dict[str, float]:
    """Fraction of each tensor's scores under one threshold t, each fraction at most `cap`, with t the
    smallest value whose capped counts reach round(sparsity * total) (bisection over the sorted scores)."""
    ranked = {n: s.reshape(-1).sort().values for n, s in sal.items()}
    sizes = {n: r.numel() for n, r in ranked.items()}
    limit = {n: int(cap * sizes[n]) for n in ranked}
    k = min(round(sparsity * sum(sizes.values())), sum(limit.values()))
    if k == 0:
        return dict.fromkeys(sal, 0.0)
    flat = torch.cat(list(ranked.values())).sort().values

    def counts(t: Tensor) -> dict[str, int]:
        return {n: min(int(torch.searchsorted(r, t, right=True)), limit[n]) for n, r in ranked.items()}

    lo, hi = 0, flat.numel() - 1  # the answer is flat[i] for the smallest i with sum(counts) >= k
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(counts(flat[mid]).values()) >= k:
            hi = mid
        else:
            lo = mid + 1
    return {n: c / sizes[n] for n, c in counts(flat[lo]).items()}


def _rule_for(cfg: OBSPruning, sparsity: dict[str, float]):
    def rule(name: str, w: Tensor, H: Tensor) -> ColumnRule:
        if cfg.pattern is OBSPattern.NM:
            return ColumnRule(nm=(cfg.n, cfg.m))
        if cfg.pattern is OBSPattern.BLOCK:
            sal = obs_saliency(w, H, cfg.damp)
            return ColumnRule(fixed_mask=block_mask(sal, cfg.block_rows, cfg.block_cols, sparsity[name]))
        if cfg.pattern is OBSPattern.STRIPS:
            return ColumnRule(sparsity=sparsity[name], strips=(cfg.strip_rows, cfg.strip_panel, cfg.strip_multiple))
        return ColumnRule(sparsity=sparsity[name])

    return rule


@register(Family.PRUNE, OBSPruning)
def prune_obs_(model: nn.Module, cfg: OBSPruning, calibration, progress: bool = False) -> PruneResult:
    """Prune `model` in place with OBS reconstruction; `calibration`: a Task, Calibration or
    list of Batch. Returns the masks and a per-tensor report (sparsity, relative error)."""
    names = target_names(model, cfg.targets, cfg.layers)
    if not names:
        raise ValueError(f"no tensors of kinds {[t.value for t in cfg.targets]} found in the model")
    refuse_transform_coded(model, names)
    cal = as_calibration(calibration, cfg.calibration_batches)
    if cfg.scope is Scope.GLOBAL and cfg.pattern is not OBSPattern.NM:
        sparsity = _global_sparsities(model, names, cal, cfg)
    else:
        sparsity = dict.fromkeys(names, cfg.sparsity)
    outcomes = reconstruct_weights_(model, names, cal, _rule_for(cfg, sparsity), damp=cfg.damp, block=cfg.block,
                                    sequential=cfg.sequential, progress=progress, desc="prune_obs")
    masks = {n: o.kept.cpu() for n, o in outcomes.items()}
    method = {"method": "obs", "pattern": cfg.pattern.value, "scope": cfg.scope.value,
              "target_sparsity": cfg.sparsity if cfg.pattern is not OBSPattern.NM else 1 - cfg.n / cfg.m,
              "targets": [t.value for t in cfg.targets], "damp": cfg.damp,
              "calibration_batches": cfg.calibration_batches, "sequential": cfg.sequential,
              **({"strips": {"rows": cfg.strip_rows, "panel": cfg.strip_panel, "multiple": cfg.strip_multiple}}
                 if cfg.pattern is OBSPattern.STRIPS else {}),
              "relative_output_error": {n: round(o.rel_error, 6) for n, o in outcomes.items()}}
    return finish(model, masks, method)
