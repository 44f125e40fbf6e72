"""Static int8: int8 weights, activation scales calibrated once on data (calibrate.py).

Every matrix input (layer input x, recurrent h, LSTM pre-projection m, decoder input,
input-projection features) is rounded to int8 with a fixed per-tensor scale amax / 127,
amax chosen by the configured observer (min-max, percentile, MSE, moving average).
"""

from __future__ import annotations

from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.int8.calibrate import ActivationRanges
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.dynamic import convert_emulated_


def quantize_static_(model: SequenceModel, ranges: ActivationRanges, cfg: Int8Config | None = None) -> SequenceModel:
    """Static int8 in place, with ranges from collect_ranges on the float model."""
    cfg = cfg or Int8Config(mode=Int8Mode.STATIC)
    return convert_emulated_(model, Int8Mode.STATIC, cfg, ranges)
