"""Transform-domain sparsity: weight matrices stored as their largest DCT coefficients.

    res = dct_sparsify_(model, DCTSparsity(keep=0.25))                        # row-wise, fp32 values
    res = dct_sparsify_(model, DCTSparsity(target_bytes_fraction=0.1, block=(8, 8), bits=8))
    print(res)                                   # per tensor: relative error, stored bytes
    save_model(model, "out")                     # coefficients sparse on disk, weights rebuilt at load

Each target matrix W (R, C) becomes C = T_R W T_C^T, an orthonormal DCT-II applied row-wise
(block None: every row is one C-point DCT) or in 2-D blocks (br x bc). The coefficients of
largest magnitude, i.e. most energy, are kept: `keep` of them per tensor (scope layer) or
with one threshold over all targets (scope global: since the transform is orthonormal this
keeps the most weight energy overall), or as many as fit `target_bytes_fraction` of the
targets' fp32 bytes (codes, their sparse index and the scales counted). `bits` 8 / 16
quantizes the kept coefficients symmetrically (a float32 scale per tensor or per row of
the coefficient matrix); 32 keeps float32 values.

The model's weights are replaced by the inverse transform of what is stored, so torch
kernels run unchanged and in-memory results equal the saved artifact's (float32
round-off). Storage is the "dct" encoding of rnnslim.io.transform_encoding.
Fine-tuning afterwards keeps the weights in the kept subspace with
rnnslim.transform.projection (the `finetune` stage does that by itself).
"""

from __future__ import annotations

from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn

from rnnslim.io.transform_encoding import DCT, CODE_DTYPES, block_dct, dct_nbytes, dct_roundtrip
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind
from rnnslim.prune.unstructured import Scope
from rnnslim.transform.common import TransformResult, relative_error, totals, transform_targets, write_back_
from rnnslim.utils.atomic import atomic_verb
from rnnslim.verbs import Family, register


class ScaleMode(str, Enum):
    TENSOR = "tensor"  # one scale per weight matrix
    ROW = "row"  # one scale per row of the coefficient matrix (a gate row for row-wise DCT)


class DCTSparsity(BaseModel):
    """Keep the largest DCT coefficients of the target weight matrices (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    keep: float | None = Field(default=None, gt=0.0, le=1.0, description="fraction of the coefficients kept")
    target_bytes_fraction: float | None = Field(
        default=None, gt=0.0, le=1.0, description="keep as many coefficients as fit this fraction of the targets' "
                                                  "fp32 bytes (codes + sparse index + scales)")
    block: tuple[int, int] | None = Field(default=None, description="2-D DCT blocks [rows, cols]; None: row-wise")
    bits: int = Field(default=32, description="coefficient storage: 8 or 16 (int codes + scale) or 32 (float32)")
    scale: ScaleMode = Field(default=ScaleMode.ROW, description="scale granularity of 8/16-bit codes")
    scope: Scope = Field(default=Scope.LAYER, description="layer: `keep` per tensor; global: one threshold")
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = Field(default=None, description="only these recurrent layers (None = all)")

    @field_validator("block")
    @classmethod
    def _positive_block(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError(f"block sizes must be positive, got {list(v)}")
        return v

    @field_validator("bits")
    @classmethod
    def _bits(cls, v):
        if v not in CODE_DTYPES:
            raise ValueError(f"bits must be one of {sorted(CODE_DTYPES)}, got {v}")
        return v

    @model_validator(mode="after")
    def _one_budget(self):
        if (self.keep is None) == (self.target_bytes_fraction is None):
            raise ValueError("give exactly one of keep (a fraction of the coefficients) or target_bytes_fraction")
        return self

    def block_for(self, shape: tuple[int, int]) -> list[int]:
        """The block of a (R, C) matrix: row-wise is [1, C]; blocks larger than the matrix are clipped."""
        br, bc = self.block or (1, shape[1])
        return [min(br, shape[0]), min(bc, shape[1])]


def _counts_layer(coefs: dict[str, Tensor], fraction: float) -> dict[str, int]:
    return {n: min(c.numel(), max(1, round(fraction * c.numel()))) for n, c in coefs.items()}


class _GlobalOrder:
    """All targets' coefficients ranked by |c| at once: counts per tensor of the top K overall."""

    def __init__(self, coefs: dict[str, Tensor]) -> None:
        self.names = list(coefs)
        mags = torch.cat([c.abs().reshape(-1).float() for c in coefs.values()])
        owner = torch.cat([torch.full((c.numel(),), i, device=c.device) for i, c in enumerate(coefs.values())])
        self.owner = owner[torch.argsort(mags, descending=True, stable=True)]
        self.total = mags.numel()

    def counts(self, k: int) -> dict[str, int]:
        per = torch.bincount(self.owner[:k], minlength=len(self.names))
        return {n: int(per[i]) for i, n in enumerate(self.names)}


def _bytes(counts: dict[str, int], coefs: dict[str, Tensor], cfg: DCTSparsity) -> int:
    return sum(dct_nbytes(tuple(coefs[n].shape), k, cfg.bits, cfg.scale.value) for n, k in counts.items())


def _fit_budget(coefs: dict[str, Tensor], cfg: DCTSparsity, budget: float) -> dict[str, int]:
    """The most coefficients whose stored bytes fit `budget` (bisection; bytes grow with the count)."""
    order = _GlobalOrder(coefs) if cfg.scope is Scope.GLOBAL else None
    total = sum(c.numel() for c in coefs.values())

    def counts(k: int) -> dict[str, int]:
        return order.counts(k) if order else _counts_layer(coefs, k / total)

    lo, hi = 0, total  # counts(lo) fits (checked below), counts(hi + 1) does not
    if _bytes(counts(1), coefs, cfg) > budget:
        raise ValueError(f"target_bytes_fraction {cfg.target_bytes_fraction} leaves {budget:.0f} bytes, less than "
                         f"the storage overhead of these {len(coefs)} tensors ({_bytes(counts(1), coefs, cfg)} bytes)")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _bytes(counts(mid), coefs, cfg) <= budget else (lo, mid - 1)
    return counts(max(lo, 1))


def _keep_counts(coefs: dict[str, Tensor], cfg: DCTSparsity) -> dict[str, int]:
    if cfg.target_bytes_fraction is not None:
        return _fit_budget(coefs, cfg, cfg.target_bytes_fraction * sum(4 * c.numel() for c in coefs.values()))
    if cfg.scope is Scope.GLOBAL:
        order = _GlobalOrder(coefs)
        return order.counts(max(1, round(cfg.keep * order.total)))
    return _counts_layer(coefs, cfg.keep)


def dct_entry(cfg: DCTSparsity, shape: tuple[int, int], keep: int) -> dict:
    """The model.tensor_encodings entry of one tensor."""
    return {"encoding": DCT, "block": cfg.block_for(shape), "keep": keep, "bits": cfg.bits, "scale": cfg.scale.value}


@register(Family.FACTORIZE, DCTSparsity)
@atomic_verb
def dct_sparsify_(model: nn.Module, cfg: DCTSparsity) -> TransformResult:
    """Replace each target weight by its DCT-sparsified (optionally quantized) version in place,
    mark it for "dct" storage, and report per tensor (all or nothing)."""
    found = transform_targets(model, cfg.targets, cfg.layers, "dct_sparsify")
    old = {t.name: p.detach() for t, p in found}
    coefs = {n: block_dct(w.double(), cfg.block_for(tuple(w.shape))) for n, w in old.items()}
    counts = _keep_counts(coefs, cfg)
    new, entries, tensors = {}, {}, {}
    for name, w in old.items():
        shape, c = tuple(w.shape), coefs[name]
        entries[name] = dct_entry(cfg, shape, counts[name])
        new[name] = dct_roundtrip(w, {k: v for k, v in entries[name].items() if k != "encoding"})
        energy = c.pow(2)
        kept = torch.topk(energy.reshape(-1), counts[name], sorted=False).values.sum() if counts[name] else 0.0
        tensors[name] = {"shape": list(shape), "block": entries[name]["block"], "keep": counts[name],
                         "keep_fraction": counts[name] / w.numel(),
                         "energy_kept": float(kept / energy.sum().clamp(min=1e-300)),
                         "relative_error": relative_error(new[name], w), "fp32_bytes": 4 * w.numel(),
                         "stored_bytes": dct_nbytes(shape, counts[name], cfg.bits, cfg.scale.value)}
    method = {"op": "dct_sparsify", **cfg.model_dump(mode="json")}
    write_back_(model, new, entries, {**method, "tensors": {n: r["keep"] for n, r in tensors.items()}})
    return TransformResult({"method": method, "tensors": tensors, "total": totals(tensors)})
