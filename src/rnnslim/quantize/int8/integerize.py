"""Convert a float SequenceModel into the fully integer model (integer.py layers).

Scales, in order: the first layer's input scale comes from the int8 embedding table
(max |weight| / 127), from the input projection's calibrated output range, or from the
calibrated feature range (identity input); each layer's output scale s_h comes from its
calibrated max |h| (1/127 without calibration: |h| <= 1 for LSTM/GRU/tanh-RNN) and is the
next layer's input scale; the LSTM cell state format Q(15-cf).cf covers cell_headroom x
the calibrated max |c| (or config.default_cell_bits integer bits without data).

A tied model (the decoder's weight is the embedding's) keeps one int8 table: the decoder reads
the embedding's codes with its per-tensor scale on every row (IntegerLinear.tied_to). On the
tied word LM of benchmarks/your_model_to_device.py that costs +0.03 % test loss against
per-row decoder codes (+0.02 % vs float) and saves a V x E table of flash.
"""

from __future__ import annotations

from torch import nn

from rnnslim.models.sequence import InputActivation, InputKind, SequenceModel
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
from rnnslim.quantize.int8.integer_activation import IntegerActivation
from rnnslim.recurrent.gates import CellType


def quantize_integer_(model: SequenceModel, ranges: ActivationRanges | None = None,
                      cfg: Int8Config | None = None) -> SequenceModel:
    """Fully integer int8 in place (embedding, every recurrent layer, decoder)."""
    cfg = cfg or Int8Config(mode=Int8Mode.INTEGER)
    layers = float_layers(model)
    if ranges is not None and len(ranges.layers) != len(layers):
        raise ValueError(f"activation ranges describe {len(ranges.layers)} layers, the model has {len(layers)}")
    kind = model.spec.input_kind
    tied = kind is InputKind.EMBEDDING and _tied(model)
    if kind is not InputKind.EMBEDDING and ranges is None:
        raise ValueError(f"input kind {kind.value!r} needs calibration data: the integer path must know the range "
                         "of the input features")
    if kind is InputKind.EMBEDDING:
        model.embedding = IntegerEmbedding.from_float(model.embedding)
        s_x = float(model.embedding.scale)
    elif kind is InputKind.LINEAR:
        s_x = _integer_front_end_(model, ranges)
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
    if tied:  # one int8 table for the lookup and the decoder (its rows scaled per tensor)
        model.decoder = IntegerLinear.tied_to(model.embedding, model.decoder, s_x)
    else:
        model.decoder = IntegerLinear.from_float(model.decoder, s_x, LinearOutput.FLOAT)
    return model



def _integer_front_end_(model: SequenceModel, ranges: ActivationRanges) -> float:
    """The input projection with int8 output and, if the spec has one, its activation as a code table
    (IntegerActivation); returns the first layer's input scale. ReLU keeps the projection's scale
    (the table is max(0, q)); other activations requantize from the projection's own calibrated range."""
    act = model.spec.input_activation
    if act is InputActivation.NONE:
        proj_amax = ranges.layers[0].x
    elif act is InputActivation.RELU:
        proj_amax = ranges.layers[0].x  # negative codes saturate at -127: ReLU maps them all to 0
    else:
        proj_amax = ranges.projected
    proj = IntegerLinear.from_float(model.input_proj, act_scale(ranges.inputs), LinearOutput.INT8, out_amax=proj_amax)
    s_x = float(proj.out_q_scale) if act in (InputActivation.NONE, InputActivation.RELU) else act_scale(ranges.layers[0].x)
    new_act = IntegerActivation.from_scales(act, float(proj.out_q_scale), s_x) if act is not InputActivation.NONE \
        else None
    model.input_proj = proj
    if new_act is not None:
        model.input_act = new_act
    return s_x


def _tied(model: SequenceModel) -> bool:
    """The float decoder's weight is the float embedding's own tensor (spec.tie_weights)."""
    dec, emb = getattr(model, "decoder", None), getattr(model, "embedding", None)
    return (bool(getattr(model.spec, "tie_weights", False)) and isinstance(emb, nn.Embedding)
            and isinstance(dec, nn.Linear) and dec.weight.data_ptr() == emb.weight.data_ptr()
            and dec.weight.shape == emb.weight.shape)
