"""Pipeline stages for transform-domain storage (kinds: dct_sparsify, block_circulant).

    - kind: dct_sparsify              # row-wise DCT, 8-bit coefficients, 20 % of the fp32 bytes
      target_bytes_fraction: 0.2
      bits: 8
    - kind: dct_sparsify              # 8 x 8 blocks, a quarter of the coefficients, then 500
      keep: 0.25                      #   fine-tuning steps that stay in the kept subspace
      block: [8, 8]
      targets: [input, recurrent, output]
      finetune_steps: 500
    - kind: block_circulant           # 8 x 8 circulant blocks: 1/8 of the numbers
      block: 8

The configs are the technique configs (rnnslim.transform.DCTSparsity / BlockCirculant)
plus `kind`, `finetune_steps` and the shared fine-tuning fields (rnnslim.train.finetune). The
fine-tuning projects the coded weights back after every step (rnnslim.transform.projection)
and re-quantizes the coefficients at the end; a later `finetune` stage does the same. The
saved artifact stores the coefficients / circulant numbers (rnnslim.io.transform_encoding).

Composition: put pruning and weight quantization before neither (a pruned or quantized
tensor is refused with an error) nor after (quantize_weights refuses transform-coded
layers): quantize DCT coefficients with `bits` instead. `cast` after these stages stores
the coefficients from the half-precision weights.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from rnnslim.pipeline.finetuning import projected_finetune
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.train.finetune import FinetuneFields
from rnnslim.transform import (
    BlockCirculant,
    DCTSparsity,
    TransformResult,
    block_circulant_,
    dct_sparsify_,
)


class _TransformStage(StageConfig, FinetuneFields):
    finetune_steps: int = Field(default=0, ge=0, le=10**7,
                                description="fine-tuning steps after the transform, projected onto its subspace")

    def trains_model(self) -> bool:
        return self.finetune_steps > 0


class DCTSparsifyStage(_TransformStage, DCTSparsity):
    """Store weights as their highest-energy DCT coefficients (sparse, 8/16/32-bit), rebuilt at load."""

    kind: Literal["dct_sparsify"] = "dct_sparsify"


class BlockCirculantStage(_TransformStage, BlockCirculant):
    """Replace weight matrices by the nearest block-circulant ones (k numbers per k x k block)."""

    kind: Literal["block_circulant"] = "block_circulant"


def _finish(model: nn.Module, result: TransformResult, cfg: _TransformStage, ctx: StageContext) -> nn.Module:
    ctx.record.update(result.report)
    if cfg.finetune_steps:
        ctx.record["finetune"] = projected_finetune(model, cfg, cfg.finetune_steps, ctx, "finetune")
    return model


def _technique(cfg: _TransformStage, cls):
    return cls(**cfg.model_dump(include=set(cls.model_fields)))


@register_stage(DCTSparsifyStage)
def run_dct_sparsify(model: nn.Module, cfg: DCTSparsifyStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    return _finish(model, dct_sparsify_(model, _technique(cfg, DCTSparsity)), cfg, ctx)


@register_stage(BlockCirculantStage)
def run_block_circulant(model: nn.Module, cfg: BlockCirculantStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    return _finish(model, block_circulant_(model, _technique(cfg, BlockCirculant)), cfg, ctx)
