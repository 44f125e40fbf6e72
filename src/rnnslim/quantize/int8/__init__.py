"""Post-training int8 for recurrent models: dynamic, static and fully integer.

- api.py          quantize_int8_(model, Int8Config(mode=...), calibration) — the verb
- config.py       Int8Mode, Int8Config
- calibrate.py    activation ranges of the float model (observers from quantize.observers)
- qweights.py     per-row int8 weights, activation quantizers
- emulated.py     dynamic / static layers (int8 storage, float-emulated compute)
- fixedpoint.py   requantization multipliers, rounding shifts, sigmoid/tanh tables
- integer_cells.py, integer.py, integerize.py
                  the pure-integer reference (no float inside a step) and its conversion
- kernel.c, kernel.py
                  the same integer program in C99 (SIMD int8 dot products), IntegerRunner
- modules.py      model-format kinds (recipe stages: rnnslim.pipeline.stages.int8)
"""

from rnnslim.quantize.int8 import kernel_eval  # noqa: F401  registers the C kernel as a stream runner (rnnslim.tasks.extensions)
from rnnslim.quantize.int8.api import calibrate, quantize_int8_
from rnnslim.quantize.int8.calibrate import (
    ActivationRanges,
    LayerRanges,
    collect_ranges,
)
from rnnslim.quantize.int8.config import Int8Config, Int8Mode

__all__ = [
    "ActivationRanges",
    "Int8Config",
    "Int8Mode",
    "IntegerRunner",
    "LayerRanges",
    "calibrate",
    "collect_ranges",
    "quantize_int8_",
]


def __getattr__(name: str):
    if name == "IntegerRunner":  # loads ctypes / compiles on first use only
        from rnnslim.quantize.int8.runner import IntegerRunner

        return IntegerRunner
    raise AttributeError(name)
