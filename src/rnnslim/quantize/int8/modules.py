"""Model-format kinds of the int8 layers (rnnslim.io.modules imports this lazily).

Each builder returns a module with the right buffer shapes from its `rnnslim_config()`;
load_model then fills the int8 codes, scales, multipliers and tables from the weights file,
so a loaded model computes exactly what the saved one did.
"""

from __future__ import annotations

from rnnslim.io.modules import register_module_kind
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.quantize.int8.integer import (
    IntegerEmbedding,
    IntegerLinear,
    IntegerRecurrent,
)
from rnnslim.quantize.int8.integer_activation import IntegerActivation

INT8_MODULES = (Int8Recurrent, Int8Linear, Int8Embedding, IntegerRecurrent, IntegerLinear, IntegerEmbedding,
                IntegerActivation)

for _cls in INT8_MODULES:
    register_module_kind(_cls.rnnslim_kind, lambda config, _cls=_cls: _cls(**config))
