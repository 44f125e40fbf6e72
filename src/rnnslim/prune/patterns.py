"""Semi-structured sparsity patterns: N:M and blocks / stripes.

Weights are viewed as (rows, cols) = (shape[0], rest); for Linear and packed recurrent
weights (G*H, I) dim 1 is the input dimension.

N:M      in each group of M consecutive inputs of a row, keep the N highest scores
         (2:4 = 50 %). A last group shorter than M keeps min(N, its length).
Block    cut the matrix into (block_rows x block_cols) tiles, score each tile by the RMS
         of its per-weight scores (for magnitude: the block's Frobenius norm / sqrt(size),
         which treats cut-off edge tiles fairly) and zero the lowest tiles until the
         requested fraction of weights is pruned. A block dimension of None spans the
         whole matrix: (1, None) prunes whole gate rows, (None, 1) whole input columns
         (stripes). scope GLOBAL ranks the tiles of all targeted tensors together.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from rnnslim.prune.common import PruneResult, as_rows, finish, score_targets
from rnnslim.prune.importance import Criterion, Scores
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind
from rnnslim.prune.unstructured import Scope
from rnnslim.utils.atomic import atomic_verb
from rnnslim.verbs import Family, register


# --- N:M ----------------------------------------------------------------------------------
def nm_mask(scores: Tensor, n: int, m: int) -> Tensor:
    """Bool mask of `scores`' shape keeping the N largest of every M consecutive inputs."""
    if not 0 < n < m:
        raise ValueError(f"N:M needs 0 < N < M, got {n}:{m}")
    rows = as_rows(scores).float()
    R, C = rows.shape
    pad = (-C) % m
    padded = torch.cat([rows, rows.new_full((R, pad), float("-inf"))], 1).view(R, -1, m)  # (R, groups, M)
    keep = torch.zeros_like(padded, dtype=torch.bool)
    keep.scatter_(2, padded.topk(n, dim=2).indices, True)
    keep &= padded != float("-inf")  # padding is never kept; real -inf scores are pruned anyway
    return keep.view(R, -1)[:, :C].reshape(scores.shape)


class NMPruning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    n: int = Field(default=2, ge=1, le=64)
    m: int = Field(default=4, ge=2, le=64)
    criterion: Criterion = Criterion.MAGNITUDE
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = None
    calibration_batches: int = Field(default=8, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> NMPruning:
        if self.n >= self.m:
            raise ValueError(f"N:M needs N < M, got {self.n}:{self.m}")
        return self


@register(Family.PRUNE, NMPruning)
@atomic_verb
def prune_nm_(model: nn.Module, cfg: NMPruning, calibration=None) -> PruneResult:
    """Apply an N:M pattern along the input dimension of every targeted tensor, in place."""
    names, scores = score_targets(model, cfg.criterion, cfg.targets, cfg.layers, calibration, cfg.calibration_batches)
    masks = {n: nm_mask(s, cfg.n, cfg.m).cpu() for n, s in scores.items()}
    method = {"method": "n:m", "n": cfg.n, "m": cfg.m, "criterion": cfg.criterion.value,
              "targets": [t.value for t in cfg.targets]}
    return finish(model, masks, method)


# --- blocks -------------------------------------------------------------------------------
def _block_dims(shape: tuple[int, int], block_rows: int | None, block_cols: int | None) -> tuple[int, int]:
    return (block_rows or shape[0]), (block_cols or shape[1])


def block_scores(scores: Tensor, block_rows: int | None, block_cols: int | None) -> tuple[Tensor, Tensor]:
    """(RMS score per tile (nbr, nbc), number of real weights per tile (nbr, nbc))."""
    rows = as_rows(scores).float()
    R, C = rows.shape
    br, bc = _block_dims((R, C), block_rows, block_cols)
    pr, pc = (-R) % br, (-C) % bc
    sq = nn.functional.pad(rows.pow(2), (0, pc, 0, pr))  # zero padding: adds nothing to the sums
    ones = nn.functional.pad(torch.ones_like(rows), (0, pc, 0, pr))
    nbr, nbc = (R + pr) // br, (C + pc) // bc
    sums = sq.view(nbr, br, nbc, bc).sum((1, 3))
    counts = ones.view(nbr, br, nbc, bc).sum((1, 3))
    return (sums / counts).sqrt(), counts


def _expand(tile_mask: Tensor, shape: torch.Size, block_rows: int | None, block_cols: int | None) -> Tensor:
    R = shape[0] if len(shape) > 1 else 1  # the same 2-D view as common.as_rows
    C = math.prod(shape) // R
    br, bc = _block_dims((R, C), block_rows, block_cols)
    full = tile_mask.repeat_interleave(br, 0).repeat_interleave(bc, 1)[:R, :C]
    return full.reshape(shape)


def _prune_lowest_tiles(tile_scores: Tensor, tile_counts: Tensor, n_prune: int) -> Tensor:
    """Keep-mask over tiles: drop the lowest-scoring tiles while the weights dropped <= n_prune."""
    order = torch.argsort(tile_scores.reshape(-1), stable=True)
    dropped = tile_counts.reshape(-1)[order].cumsum(0)
    keep = torch.ones(order.numel(), dtype=torch.bool)
    keep[order[dropped <= n_prune]] = False
    return keep.view(tile_scores.shape)


def block_mask(scores: Tensor, block_rows: int | None, block_cols: int | None, sparsity: float) -> Tensor:
    """Bool mask of `scores`' shape with whole tiles pruned, about `sparsity` of the weights."""
    tiles, counts = block_scores(scores, block_rows, block_cols)
    keep = _prune_lowest_tiles(tiles, counts, round(sparsity * scores.numel()))
    return _expand(keep, scores.shape, block_rows, block_cols)


class BlockPruning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sparsity: float = Field(ge=0.0, lt=1.0)
    block_rows: int | None = Field(default=4, ge=1, description="tile height; None = all rows (column stripes)")
    block_cols: int | None = Field(default=4, ge=1, description="tile width; None = all columns (row stripes)")
    criterion: Criterion = Criterion.MAGNITUDE
    scope: Scope = Scope.LAYER
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = None
    calibration_batches: int = Field(default=8, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> BlockPruning:
        if self.block_rows is None and self.block_cols is None:
            raise ValueError("block_rows and block_cols cannot both be None (that would prune whole tensors)")
        return self


def block_masks(scores: Scores, cfg: BlockPruning) -> dict[str, Tensor]:
    if cfg.scope is Scope.LAYER:
        return {n: block_mask(s, cfg.block_rows, cfg.block_cols, cfg.sparsity).cpu() for n, s in scores.items()}
    tiles = {n: block_scores(s, cfg.block_rows, cfg.block_cols) for n, s in scores.items()}
    flat_scores = torch.cat([t.reshape(-1).cpu() for t, _ in tiles.values()])
    flat_counts = torch.cat([c.reshape(-1).cpu() for _, c in tiles.values()])
    total = sum(s.numel() for s in scores.values())
    keep = _prune_lowest_tiles(flat_scores, flat_counts, round(cfg.sparsity * total))
    out, start = {}, 0
    for n, (t, _) in tiles.items():
        part = keep[start:start + t.numel()].view(t.shape)
        out[n] = _expand(part, scores[n].shape, cfg.block_rows, cfg.block_cols)
        start += t.numel()
    return out


@register(Family.PRUNE, BlockPruning)
@atomic_verb
def prune_block_(model: nn.Module, cfg: BlockPruning, calibration=None) -> PruneResult:
    """Zero whole blocks / stripes of every targeted tensor, in place."""
    names, scores = score_targets(model, cfg.criterion, cfg.targets, cfg.layers, calibration, cfg.calibration_batches)
    method = {"method": "block", "block": [cfg.block_rows, cfg.block_cols], "criterion": cfg.criterion.value,
              "scope": cfg.scope.value, "target_sparsity": cfg.sparsity, "targets": [t.value for t in cfg.targets]}
    return finish(model, block_masks(scores, cfg), method)
