"""Pipeline stages for weight quantization (kinds listed below; configs = the API configs + kind).

    quantize_weights  int 2..8 bits, group-wise / per-channel          (WeightOnly fields)
    ternary_weights   {-a, 0, +a} per group                              (Ternary fields)
    kmeans            weight sharing, optional entropy-coded indices     (KMeans fields)
    half_weights      fp16 / bf16 weight storage (the `cast` stage casts the whole model)
    qat               prepare -> fine-tune (rnnslim.train.finetune fields) -> convert, resumable in ctx.work_dir/qat
    mixed_precision   per-layer bits from measured sensitivity under a size budget

Every stage records per-layer weight SQNR, bits per weight and bytes in ctx.record.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rnnslim.pipeline.finetuning import masked_finetune
from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.quantize.actquant import ActQuantConfig
from rnnslim.quantize.api import (
    QAT,
    HalfPrecision,
    KMeans,
    LayerRecord,
    QATStep,
    Ternary,
    WeightOnly,
    apply_format_,
    quantize_,
)
from rnnslim.quantize.mixed import (
    MixedPrecision,
    apply_plan_,
    calibration_loss,
    plan_mixed_precision,
)
from rnnslim.quantize.primitives import ClipMethod
from rnnslim.quantize.qat import calibrate_activations_
from rnnslim.quantize.targets import DEFAULT_TARGETS, Target
from rnnslim.train.finetune import FinetuneFields


def _summarise(records: list[LayerRecord]) -> dict:
    stored = sum(r.stored_bytes for r in records)
    fp32 = sum(r.float_bytes for r in records)
    return {"layers": [r.as_dict() for r in records], "quantized_float_bytes": fp32, "quantized_stored_bytes": stored,
            "min_weight_sqnr_db": min(r.weight_sqnr_db for r in records) if records else None,
            "mean_bits_per_weight": (sum(r.bits_per_weight * r.float_bytes for r in records) / fp32) if fp32 else None}


def _run_format(model, cfg, ctx: StageContext):
    records = apply_format_(model, cfg.weight_format(), cfg.targets)
    ctx.record.update({"format": cfg.weight_format().describe(), **_summarise(records)})
    return model


class QuantizeWeightsStage(StageConfig, WeightOnly):
    """Weight-only quantization: int8/int4/int3/int2, group-wise scales, stored packed."""

    kind: Literal["quantize_weights"] = "quantize_weights"


class TernaryWeightsStage(StageConfig, Ternary):
    """Ternary weights {-a, 0, +a} per group, stored packed."""

    kind: Literal["ternary_weights"] = "ternary_weights"


class KMeansStage(StageConfig, KMeans):
    """k-means weight sharing with entropy-coded indices."""

    kind: Literal["kmeans"] = "kmeans"


class HalfWeightsStage(StageConfig, HalfPrecision):
    """fp16 or bf16 weights."""

    kind: Literal["half_weights"] = "half_weights"


for _cls in (QuantizeWeightsStage, TernaryWeightsStage, KMeansStage, HalfWeightsStage):
    register_stage(_cls)(_run_format)


class QATStage(StageConfig, FinetuneFields):
    """Quantization-aware training for `steps` steps; the training fields are FinetuneFields."""

    kind: Literal["qat"] = "qat"
    bits: int = Field(default=4, description="2..8; ignored when ternary")
    ternary: bool = False
    group_size: int | None = Field(default=64, ge=1)
    symmetric: bool = True
    clip: ClipMethod = ClipMethod.MINMAX
    activations: bool = Field(default=False, description="fake-quantize recurrent activations too (slower loop)")
    act_bits: int = Field(default=8, ge=2, le=16)
    gate_bits: int = Field(default=8, ge=2, le=16)
    targets: tuple[Target, ...] = DEFAULT_TARGETS
    steps: int = Field(default=300, ge=1)
    entropy_coding: bool = Field(default=False, description="LZMA-code the converted weights' codes on disk")

    def trains_model(self) -> bool:
        return True

    def qat_config(self, step: QATStep = QATStep.PREPARE) -> QAT:
        coded = {"entropy_coding": True} if self.entropy_coding else {}
        weights = (Ternary(group_size=self.group_size, targets=self.targets, **coded) if self.ternary else
                   WeightOnly(bits=self.bits, group_size=self.group_size, symmetric=self.symmetric, clip=self.clip,
                              targets=self.targets, **coded))
        act = ActQuantConfig(bits=self.act_bits, gate_bits=self.gate_bits) if self.activations else None
        return QAT(step=step, weights=weights, activations=act)


@register_stage(QATStage)
def run_qat(model, cfg: QATStage, ctx: StageContext):
    """prepare -> fine-tune (the best candidate, the fake-quantized input included) -> convert."""
    quantize_(model, cfg.qat_config(QATStep.PREPARE))
    calibrate_activations_(model, ctx.task, ctx.task.calibration_batches(4, cfg.batch_size, cfg.seq_len, seed=ctx.seed))
    # pruned weights stay zero: masks_from_model finds a QAT layer's pruned weights by their float
    # sparse mark or, for a quantized layer continued on its frozen grid, by the `pruned` mark of its
    # codes (their zeros are exact there: level = zero point); DCT / circulant layers left float stay coded
    record = masked_finetune(model, cfg, cfg.steps, ctx, "qat")
    quantize_(model, cfg.qat_config(QATStep.CONVERT))
    after = ctx.task.evaluate(model, "valid", max_steps=cfg.eval_max_steps)[ctx.task.primary_metric]
    metric = ctx.task.primary_metric
    ctx.record.update({"format": cfg.qat_config().weights.weight_format().describe(), "activations": cfg.activations,
                       **record, f"valid_{metric}_before_qat": record["input_valid"],
                       f"valid_{metric}_after_qat": after})
    return model


class MixedPrecisionStage(StageConfig, MixedPrecision):
    """Per-layer bit widths chosen by sensitivity under a byte budget."""

    kind: Literal["mixed_precision"] = "mixed_precision"


@register_stage(MixedPrecisionStage)
def run_mixed_precision(model, cfg: MixedPrecisionStage, ctx: StageContext):
    plan = plan_mixed_precision(model, ctx.task, cfg)
    batches = ctx.task.calibration_batches(cfg.calib_batches, cfg.batch_size, cfg.seq_len)
    records = apply_plan_(model, plan)
    measured = calibration_loss(model, ctx.task, batches)
    ctx.record.update({"plan": plan.as_dict(), "plan_table": str(plan), "measured_calibration_loss": measured,
                       **_summarise(records)})
    return model
