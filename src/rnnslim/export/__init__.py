"""Export with a parity check: ONNX (runs in ONNX Runtime). onnx/onnxruntime are optional extras,
imported only when a function that needs them runs."""

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
    "Exporter",
    "OnnxExport",
    "OnnxParityError",
    "OrtStepRunner",
    "export_step_onnx",
    "ort_session",
    "quantize_dynamic_int8",
]
