"""Export with a parity check: ONNX (runs in ONNX Runtime; fp32, and int8 with unfused recurrent
matmuls for LSTM/GRU/RNN), torch.export `.pt2` programs and full-integer int8 `.tflite` files for
TensorFlow Lite Micro (tflite.py; TensorFlow runs in a child process). onnx/onnxruntime and the
`tflite` extra are optional, imported only when a function that needs them runs."""

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
from rnnslim.export.onnx_int8 import export_int8_onnx, int8_max_abs_diff
from rnnslim.export.tflite import TFLiteExportError, export_tflite
from rnnslim.export.torch_export import (
    TorchExportError,
    TorchStepProgram,
    UnsafeArchiveError,
    export_torch_program,
    float_weights_copy,
    inspect_pt2,
    load_torch_program,
    torch_program_parity,
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
    "export_int8_onnx",
    "int8_max_abs_diff",
    "TFLiteExportError",
    "export_tflite",
    "TorchExportError",
    "TorchStepProgram",
    "UnsafeArchiveError",
    "export_torch_program",
    "float_weights_copy",
    "inspect_pt2",
    "load_torch_program",
    "torch_program_parity",
]
