"""Pipeline stages for reconstruction from calibration data (kinds: prune_obs, quantize_gptq).

    - kind: prune_obs           # SparseGPT-style one-shot pruning, 70 % of the recurrent weights
      sparsity: 0.7
    - kind: prune_obs           # 2:4 along the inputs, recurrent weights and decoder
      pattern: nm
      n: 2
      m: 4
      targets: [input, recurrent, output]
    - kind: quantize_gptq       # error-compensating int2, groups of 64, asymmetric
      bits: 2
      symmetric: false

prune_obs marks the pruned tensors for sparse storage (like `prune`), so a later `finetune`
keeps the zeros; quantize_gptq stores exactly like `quantize_weights`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from rnnslim.io.sparse_encoding import SparseFormat
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.prune.masks import mark_sparse_
from rnnslim.reconstruct.gptq import GPTQ, quantize_gptq_
from rnnslim.reconstruct.sparsegpt import OBSPruning, prune_obs_


class PruneOBSStage(StageConfig, OBSPruning):
    """SparseGPT-style one-shot pruning with reconstruction from calibration data."""

    kind: Literal["prune_obs"] = "prune_obs"
    storage: SparseFormat = Field(default=SparseFormat.AUTO, description="how the pruned tensors are stored")


class QuantizeGPTQStage(StageConfig, GPTQ):
    """GPTQ: error-compensating weight quantization from calibration data."""

    kind: Literal["quantize_gptq"] = "quantize_gptq"


@register_stage(PruneOBSStage)
def run_prune_obs(model: nn.Module, cfg: PruneOBSStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    result = prune_obs_(model, OBSPruning(**cfg.model_dump(exclude={"kind", "storage"})), ctx.task,
                        progress=ctx.progress)
    ctx.record.update(result.report)
    ctx.record["storage"] = mark_sparse_(model, list(result.masks), cfg.storage)
    return model


@register_stage(QuantizeGPTQStage)
def run_quantize_gptq(model: nn.Module, cfg: QuantizeGPTQStage, ctx: StageContext) -> nn.Module:
    model.to(ctx.device)
    records = quantize_gptq_(model, GPTQ(**cfg.model_dump(exclude={"kind"})), ctx.task, progress=ctx.progress)
    stored = sum(r.stored_bytes for r in records)
    ctx.record.update({"format": cfg.weight_format().describe(), "layers": [r.as_dict() for r in records],
                       "quantized_stored_bytes": stored,
                       "relative_output_error": model.history[-1]["gptq"]["relative_output_error"]})
    return model
