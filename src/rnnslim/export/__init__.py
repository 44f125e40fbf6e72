"""Export with a parity check: ONNX (runs in ONNX Runtime; fp32, and int8 with unfused recurrent
matmuls for LSTM/GRU/RNN) and torch.export `.pt2` programs. onnx/onnxruntime are optional extras,
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
from rnnslim.export.onnx_int8 import export_int8_onnx, int8_max_abs_diff
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
    "TorchExportError",
    "TorchStepProgram",
    "UnsafeArchiveError",
    "export_torch_program",
    "float_weights_copy",
    "inspect_pt2",
    "load_torch_program",
    "torch_program_parity",
]
