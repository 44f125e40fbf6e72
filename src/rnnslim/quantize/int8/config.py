"""Typed configuration of post-training int8 quantization (dynamic, static, integer)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rnnslim.quantize.observers import ObserverKind


class Int8Mode(str, Enum):
    # int8 weights; activations quantized per row on the fly; float gates and state
    DYNAMIC = "dynamic"
    # int8 weights; activations quantized with calibrated per-tensor scales; float gates and state
    STATIC = "static"
    # int8 weights and activations, int32 accumulators, Q.12 gates through lookup tables,
    # int16 cell state: no float inside the model (integer_cells.py), runs in kernel.c
    INTEGER = "integer"


class Int8Config(BaseModel):
    """What `quantize_int8_` does to a SequenceModel."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Int8Mode = Int8Mode.DYNAMIC
    observer: ObserverKind = Field(default=ObserverKind.MINMAX,
                                   description="how calibrated activation ranges are chosen (static, integer)")
    percentile: float = Field(default=99.99, gt=50, le=100, description="percentile observer only")
    quantize_embedding: bool = Field(default=True, description="dynamic/static: also the input embedding / projection")
    quantize_decoder: bool = Field(default=True, description="dynamic/static: also the output Linear")
    cell_headroom: float = Field(default=1.25, ge=1.0,
                                 description="integer: the int16 cell state covers headroom x the calibrated max |c|")
    default_cell_bits: int = Field(default=5, ge=0, le=15,
                                   description="integer, no calibration data: integer bits of the cell state (Q5.10)")

    @model_validator(mode="after")
    def _check(self) -> Int8Config:
        if self.mode is Int8Mode.INTEGER and not (self.quantize_embedding and self.quantize_decoder):
            raise ValueError("the integer mode quantizes the whole model (embedding, layers, decoder); "
                             "quantize_embedding / quantize_decoder = false need the dynamic or static mode")
        return self

    @property
    def needs_calibration(self) -> bool:
        return self.mode is Int8Mode.STATIC
