"""Export with a parity check: ONNX (runs in ONNX Runtime). onnx/onnxruntime are optional extras,
imported only when a function that needs them runs."""

from rnnslim.export.c_float import export_c_float
from rnnslim.export.onnx import (
    Exporter,
    OnnxExport,
    OnnxParityError,
    OrtStepRunner,
    export_step_onnx,
    ort_session,
    quantize_dynamic_int8,
)

__all__ = [
    "export_c_float",
    "Exporter",
    "OnnxExport",
    "OnnxParityError",
    "OrtStepRunner",
    "export_step_onnx",
    "ort_session",
    "quantize_dynamic_int8",
]
