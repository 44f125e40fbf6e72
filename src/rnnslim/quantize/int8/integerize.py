"""Convert a float SequenceModel into the fully integer model (integer.py layers).

Scales, in order: the first layer's input scale comes from the int8 embedding table
(max |weight| / 127), from the input projection's calibrated output range, or from the
calibrated feature range (identity input); each layer's output scale s_h comes from its
calibrated max |h| (1/127 without calibration: |h| <= 1 for LSTM/GRU/tanh-RNN) and is the
next layer's input scale; the LSTM cell state format Q(15-cf).cf covers cell_headroom x
the calibrated max |c| (or config.default_cell_bits integer bits without data).
"""

from __future__ import annotations

from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.quantize.int8.calibrate import ActivationRanges
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.dynamic import float_layers
from rnnslim.quantize.int8.integer import (
    IntegerEmbedding,
    IntegerLinear,
    IntegerRecurrent,
    LinearOutput,
    act_scale,
    cell_frac_bits,
)
from rnnslim.recurrent.gates import CellType


def quantize_integer_(model: SequenceModel, ranges: ActivationRanges | None = None,
                      cfg: Int8Config | None = None) -> SequenceModel:
    """Fully integer int8 in place (embedding, every recurrent layer, decoder)."""
    cfg = cfg or Int8Config(mode=Int8Mode.INTEGER)
    layers = float_layers(model)
    if ranges is not None and len(ranges.layers) != len(layers):
        raise ValueError(f"activation ranges describe {len(ranges.layers)} layers, the model has {len(layers)}")
    kind = model.spec.input_kind
    if kind is not InputKind.EMBEDDING and ranges is None:
        raise ValueError(f"input kind {kind.value!r} needs calibration data: the integer path must know the range "
                         "of the input features")
    if kind is InputKind.EMBEDDING:
        model.embedding = IntegerEmbedding.from_float(model.embedding)
        s_x = float(model.embedding.scale)
    elif kind is InputKind.LINEAR:
        model.input_proj = IntegerLinear.from_float(model.input_proj, act_scale(ranges.inputs), LinearOutput.INT8,
                                                    out_amax=ranges.layers[0].x)
        s_x = float(model.input_proj.out_q_scale)
    else:
        s_x = act_scale(ranges.layers[0].x)
    for k, layer in enumerate(layers):
        r = ranges.layers[k] if ranges else None
        if model.rnn.cell is CellType.LSTM:
            cf = cell_frac_bits(r.c, cfg.cell_headroom) if r else 15 - cfg.default_cell_bits
        else:
            cf = 15
        try:
            q = IntegerRecurrent.from_float(layer, s_x, r.h if r else 1.0, cf)
        except ValueError as e:
            raise ValueError(f"rnn.layers.{k}: {e}") from None
        model.rnn.replace_layer(k, model.rnn.specs[k], q)
        s_x = float(q.h_scale)
    model.decoder = IntegerLinear.from_float(model.decoder, s_x, LinearOutput.FLOAT)
    return model
