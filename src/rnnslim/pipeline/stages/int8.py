"""Pipeline stages of post-training int8 (rnnslim.pipeline.stage lists this module).

    - kind: int8_dynamic          # no data: activations quantized per row at run time
    - kind: int8_static           # calibrated per-tensor activation scales
      calibration_batches: 8
      observer: percentile        # minmax | moving_average | percentile | mse
      percentile: 99.99
    - kind: int8_integer          # fully integer model (C kernel: IntegerRunner)
      calibration_batches: 8      # 0 = data-free defaults (|h| <= 1, Q5.10 cell state)
      gptq: true                  # any int8 stage: weights onto their int8 grids by GPTQ first

Each records the mode, the calibrated ranges and the bytes of the model's tensors before
and after in ctx.record.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from rnnslim.pipeline.stage import StageConfig, StageContext, register_stage
from rnnslim.quantize.int8.api import calibrate, quantize_int8_
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.observers import ObserverKind


class _Int8Stage(StageConfig):
    kind: str
    quantize_embedding: bool = True
    quantize_decoder: bool = True
    gptq: bool = Field(default=False, description="move the weights onto their int8 grids with GPTQ error "
                                                  "compensation first (rnnslim.reconstruct.gptq_int8)")
    gptq_batches: int = Field(default=32, ge=1, description="calibration batches (16 x 64 tokens) for gptq")

    @model_validator(mode="after")
    def _valid(self):
        stage_config(self)  # a recipe with an impossible combination fails when it is parsed
        return self


class _Calibrated(_Int8Stage):
    calibration_batches: int = Field(default=8, ge=1, description="training batches observed for activation ranges")
    batch_size: int = Field(default=16, ge=1)
    seq_len: int = Field(default=64, ge=1)
    observer: ObserverKind = ObserverKind.MINMAX
    percentile: float = Field(default=99.99, gt=50, le=100)


class Int8DynamicStage(_Int8Stage):
    """int8 weights, activations quantized on the fly (float emulation; int8_integer runs in the C kernel)."""

    kind: Literal["int8_dynamic"] = "int8_dynamic"


class Int8StaticStage(_Calibrated):
    """int8 weights and calibrated int8 activations (float emulation; int8_integer runs in the C kernel)."""

    kind: Literal["int8_static"] = "int8_static"


class Int8IntegerStage(_Calibrated):
    """Fully integer int8 model (int32 accumulators, lookup-table activations) for the C kernel and exported C."""

    kind: Literal["int8_integer"] = "int8_integer"
    calibration_batches: int = Field(default=8, ge=0, description="0: data-free scales (no calibration)")
    cell_headroom: float = Field(default=1.25, ge=1.0)
    default_cell_bits: int = Field(default=5, ge=0, le=15)


_MODES = {"int8_dynamic": Int8Mode.DYNAMIC, "int8_static": Int8Mode.STATIC, "int8_integer": Int8Mode.INTEGER}


def _tensor_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def stage_config(cfg: _Int8Stage) -> Int8Config:
    """The Int8Config a stage config stands for."""
    fields = cfg.model_dump(exclude={"kind", "calibration_batches", "batch_size", "seq_len", "gptq", "gptq_batches"})
    return Int8Config(mode=_MODES[cfg.kind], **fields)


def run_int8(model, cfg: _Int8Stage, ctx: StageContext):
    icfg = stage_config(cfg)
    before = _tensor_bytes(model)
    if cfg.gptq:
        from rnnslim.reconstruct.gptq_int8 import gptq_int8_weights_

        ctx.record["gptq_relative_output_error"] = gptq_int8_weights_(
            model, ctx.task, calibration_batches=cfg.gptq_batches, progress=ctx.progress)
    ranges = None
    n = getattr(cfg, "calibration_batches", 0)
    if n:
        batches = ctx.task.calibration_batches(n, cfg.batch_size, cfg.seq_len, seed=ctx.seed)
        ranges = calibrate(model.to("cpu"), [b.inputs for b in batches], icfg)
    quantize_int8_(model.to("cpu"), icfg, ranges)
    ctx.record.update({"mode": icfg.mode.value, "tensor_bytes_before": before,
                       "tensor_bytes_after": _tensor_bytes(model),
                       "calibration": ranges.to_dict() if ranges is not None else None})
    return model


for _cls in (Int8DynamicStage, Int8StaticStage, Int8IntegerStage):
    register_stage(_cls)(run_int8)
