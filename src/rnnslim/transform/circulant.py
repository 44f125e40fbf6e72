"""Block-circulant weight matrices: k numbers per k x k block instead of k * k.

    res = block_circulant_(model, BlockCirculant(block=8))    # 1/8 of the weights' numbers
    save_model(model, "out")                                  # part c: (R/k, C/k, k) per matrix

Each target matrix is cut into k x k blocks and every block is replaced by the nearest
circulant matrix in the least-squares sense, B[i, j] = c[(i - j) mod k] with c[d] the
mean of the block's entries on the (wrapped) diagonal d; edge blocks of a matrix whose
sides are not multiples of k are the top-left part of a k x k circulant. This projection
is linear, orthogonal and idempotent, so fine-tuning keeps the structure by projecting
after each step (rnnslim.transform.projection; the `finetune` stage does it by itself).

Storage is the "block_circulant" encoding of rnnslim.io.transform_encoding (float32 c,
rebuilt at load). The forward pass multiplies by the rebuilt dense matrix: the model
is smaller on disk, not faster. An FFT matrix-vector product (O(k log k) per block
instead of k * k) is future work.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rnnslim.io.transform_encoding import CIRCULANT, circulant_nbytes, nearest_circulant
from rnnslim.prune.targets import RECURRENT_KINDS, TargetKind
from rnnslim.transform.common import TransformResult, relative_error, totals, transform_targets, write_back_
from rnnslim.utils.atomic import atomic_verb
from rnnslim.verbs import Family, register


class BlockCirculant(BaseModel):
    """Replace target matrices by their nearest block-circulant matrices with k x k blocks."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    block: int = Field(ge=2, le=4096, description="k: the block side; storage is 1/k of the dense numbers")
    targets: tuple[TargetKind, ...] = Field(default=RECURRENT_KINDS, min_length=1)
    layers: tuple[int, ...] | None = Field(default=None, description="only these recurrent layers (None = all)")


@register(Family.FACTORIZE, BlockCirculant)
@atomic_verb
def block_circulant_(model: nn.Module, cfg: BlockCirculant) -> TransformResult:
    """Project each target weight onto block-circulant matrices in place and mark it for
    "block_circulant" storage (all or nothing)."""
    found = transform_targets(model, cfg.targets, cfg.layers, "block_circulant")
    new, entries, tensors = {}, {}, {}
    for t, p in found:
        w = p.detach()
        if cfg.block > max(w.shape):
            raise ValueError(f"block_circulant: block {cfg.block} is larger than {t.name} {tuple(w.shape)}")
        new[t.name] = nearest_circulant(w, cfg.block)
        entries[t.name] = {"encoding": CIRCULANT, "block": cfg.block}
        tensors[t.name] = {"shape": list(w.shape), "block": cfg.block, "relative_error": relative_error(new[t.name], w),
                           "fp32_bytes": 4 * w.numel(), "stored_bytes": circulant_nbytes(tuple(w.shape), cfg.block)}
    method = {"op": "block_circulant", **cfg.model_dump(mode="json")}
    write_back_(model, new, entries, {**method, "tensors": list(tensors)})
    return TransformResult({"method": method, "tensors": tensors, "total": totals(tensors)})
