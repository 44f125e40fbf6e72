"""Quantization of recurrent models (no dependency on torch.ao.quantization).

Weight quantization (this package):
- primitives.py   affine (de)quantization, granularities, clipping search, SQNR / errors
- observers.py    calibration observers: min-max, moving average, percentile, MSE
- packing.py      bit packing of 1..8-bit codes into bytes
- kmeans.py       1-D k-means (weight sharing)
- formats.py      weight formats: int 2..8 (group-wise / per row), ternary, k-means, fp16/bf16
- qtensor.py      QTensor: one stored weight matrix as buffers, dequantized with a cache
- functional.py   recurrent forward from flat weights: fused ATen kernel / unfused loop
- lowbit.py       QuantRecurrent, QuantEmbedding, QuantLinear (weight-only layers)
- actquant.py     activation fake quantization with running ranges (QAT)
- qat.py          QAT layers (straight-through estimator), prepare / convert
- frozen_grid.py  the stored scales / zero points QAT keeps when it continues a quantized layer
- mixed.py        per-layer mixed precision from measured sensitivity under a size budget
- storage.py      "lzma" tensor encoding (entropy-coded codes on disk)
- targets.py      which layers a step touches; api.py the `quantize_` verb (recipe stages: rnnslim.pipeline.stages)
- modules.py      registers the module kinds for load_model
- anchor.py       DtypeAnchored: an empty `dtype_anchor` parameter, so quantized models answer next(parameters())
Post-training int8 activations, the integer path and its C kernel: int8/.

Names below are imported lazily, so `import rnnslim.quantize` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "quantize_": "api", "apply_format_": "api", "WeightOnly": "api", "Ternary": "api", "KMeans": "api",
    "HalfPrecision": "api", "QAT": "api", "QATStep": "api", "QuantizeResult": "api",
    "ActQuantConfig": "actquant",
    "IntFormat": "formats", "TernaryFormat": "formats", "KMeansFormat": "formats", "FloatFormat": "formats",
    "int_format": "formats", "parse_format": "formats",
    "QuantRecurrent": "lowbit", "QuantEmbedding": "lowbit", "QuantLinear": "lowbit",
    "prepare_qat_": "qat", "convert_qat_": "qat", "calibrate_activations_": "qat",
    "MixedPrecision": "mixed", "plan_mixed_precision": "mixed", "apply_plan_": "mixed",
    "MixedPrecisionResult": "mixed",
    "Target": "targets",
    "make_observer": "observers", "ObserverKind": "observers",
}

__all__ = list(_EXPORTS)  # resolved lazily by __getattr__


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rnnslim.quantize.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rnnslim.quantize' has no attribute {name!r}")
