"""Dynamic int8: int8 weights, activations quantized per row on the fly (no calibration).

Also the shared conversion of a SequenceModel into the emulated int8 layers (emulated.py),
used by static.py with calibrated ranges.
"""

from __future__ import annotations

from torch import nn

from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.quantize.int8.calibrate import ActivationRanges
from rnnslim.quantize.int8.config import Int8Config, Int8Mode
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent


def float_layers(model: SequenceModel) -> list[nn.RNNBase]:
    """The torch recurrent layers of a model, or a clear error if one is already converted."""
    out = []
    for k, layer in enumerate(model.rnn.layers):
        if not isinstance(layer, nn.RNNBase):
            raise TypeError(f"rnn.layers.{k} is a {type(layer).__name__}, not a float torch recurrent layer; "
                            "int8 quantization starts from a float model (quantize once)")
        out.append(layer)
    return out


def convert_emulated_(model: SequenceModel, mode: Int8Mode, cfg: Int8Config,
                      ranges: ActivationRanges | None = None) -> SequenceModel:
    """Replace embedding/input projection, every recurrent layer and the decoder in place."""
    layers = float_layers(model)
    if mode is Int8Mode.STATIC and (ranges is None or len(ranges.layers) != len(layers)):
        raise ValueError("static int8 needs activation ranges calibrated on this model "
                         "(rnnslim.quantize.int8.calibrate)")
    for k, layer in enumerate(layers):
        q = Int8Recurrent.from_float(layer, mode, ranges.layers[k] if ranges else None)
        model.rnn.replace_layer(k, model.rnn.specs[k], q)
    if cfg.quantize_embedding:
        if model.spec.input_kind is InputKind.EMBEDDING:
            model.embedding = Int8Embedding.from_float(model.embedding)
        elif model.spec.input_kind is InputKind.LINEAR:
            model.input_proj = Int8Linear.from_float(model.input_proj, mode, ranges.inputs if ranges else None)
    if cfg.quantize_decoder:
        model.decoder = Int8Linear.from_float(model.decoder, mode, ranges.decoder_in if ranges else None)
    return model


def quantize_dynamic_(model: SequenceModel, cfg: Int8Config | None = None) -> SequenceModel:
    """Dynamic int8 in place: per-row int8 weights, per-row activation scales computed at run time."""
    cfg = cfg or Int8Config(mode=Int8Mode.DYNAMIC)
    return convert_emulated_(model, Int8Mode.DYNAMIC, cfg)
