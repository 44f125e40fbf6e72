"""One verb for post-training int8: `quantize_int8_(model, Int8Config(mode=...), calibration)`.

    from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_, IntegerRunner
    quantize_int8_(model, Int8Config(mode=Int8Mode.DYNAMIC))                   # no data needed
    quantize_int8_(model, Int8Config(mode=Int8Mode.STATIC), calibration=[x1, x2])
    quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=[x1, x2])
    runner = IntegerRunner(model)        # fused C step of the integer model (kernel.py)

`calibration` is an iterable of model inputs ((T, B) ids or (T, B, F) features), or
ActivationRanges already collected on the float model.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from rnnslim.io.tied import tie_quantized_
from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.api import QuantizeResult
from rnnslim.quantize.int8.calibrate import ActivationRanges, collect_ranges
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.dynamic import float_layers, quantize_dynamic_
from rnnslim.quantize.int8.integerize import quantize_integer_
from rnnslim.quantize.int8.static import quantize_static_
from rnnslim.quantize.int8.supported import check_no_lowrank_factors, check_no_transform_coding
from rnnslim.quantize.int8.user_modules import is_sequence_model, quantize_user_int8_
from rnnslim.utils.atomic import atomic_verb
from rnnslim.verbs import Family, register


def calibrate(model: SequenceModel, inputs: Iterable[Tensor], cfg: Int8Config | None = None) -> ActivationRanges:
    """Activation ranges of the float model with the config's observer."""
    cfg = cfg or Int8Config()
    return collect_ranges(model, inputs, cfg.observer, cfg.percentile)


@atomic_verb
def quantize_int8_(model: SequenceModel, cfg: Int8Config | None = None,
                   calibration: Iterable[Tensor] | ActivationRanges | None = None) -> SequenceModel:
    """Post-training int8 of a float SequenceModel (or dynamic / static int8 of your own module),
    in place and all or nothing; returns the model (eval mode)."""
    cfg = cfg or Int8Config()
    check_no_transform_coding(model)
    if not is_sequence_model(model):  # the user's own nn.Module: dynamic / static int8, all or nothing
        changed = quantize_user_int8_(model, cfg, calibration)
        model.history = [*(getattr(model, "history", []) or []),
                         {"op": "quantize_int8", "config": cfg.model_dump(mode="json"), "modules": changed}]
        return model.eval()
    float_layers(model)  # fail early on an already-quantized model
    check_no_lowrank_factors(model)
    model.eval()
    ranges = calibration
    if calibration is not None and not isinstance(calibration, ActivationRanges):
        ranges = calibrate(model, calibration, cfg)
    if cfg.mode is Int8Mode.DYNAMIC:
        quantize_dynamic_(model, cfg)
    elif cfg.mode is Int8Mode.STATIC:
        if ranges is None:
            raise ValueError("static int8 needs calibration data (model inputs or ActivationRanges)")
        quantize_static_(model, ranges, cfg)
    else:
        quantize_integer_(model, ranges, cfg)
    tie_quantized_(model)  # a tied embedding / decoder keeps one copy of its int8 codes
    history = list(getattr(model, "history", []) or [])
    history.append({"op": "quantize_int8", "config": cfg.model_dump(mode="json"),
                    "calibration": ranges.to_dict() if ranges is not None else None})
    model.history = history
    return model.eval()


@register(Family.QUANTIZE, Int8Config)
def _quantize_int8(model: SequenceModel, cfg: Int8Config,
                   calibration: Iterable[Tensor] | ActivationRanges | None = None) -> QuantizeResult:
    """rnnslim.quantize_(model, Int8Config(...), calibration=...)."""
    quantize_int8_(model, cfg, calibration)
    return QuantizeResult()
