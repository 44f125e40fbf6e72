"""Registers rnnslim's quantized module kinds so load_model can rebuild them.

rnnslim.io.modules imports this module lazily when a manifest lists a module kind.
"""

from __future__ import annotations

from rnnslim.io.modules import register_module_kind
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
from rnnslim.quantize.qat import QATEmbedding, QATLinear, QATRecurrent

for _cls in (QuantRecurrent, QuantEmbedding, QuantLinear, QATRecurrent, QATEmbedding, QATLinear):
    register_module_kind(_cls.rnnslim_kind, _cls.from_config)
