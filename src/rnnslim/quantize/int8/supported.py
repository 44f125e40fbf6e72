"""What the C kernel runs: check_integer_model says, with a clear error, when it cannot."""

from __future__ import annotations

from torch import nn

from rnnslim.io.transform_encoding import TRANSFORM_ENCODINGS
from rnnslim.models.sequence import InputKind, Readout, SequenceModel
from rnnslim.quantize.int8.integer import IntegerEmbedding, IntegerLinear, IntegerRecurrent, LinearOutput
from rnnslim.quantize.int8.integer_activation import IntegerActivation


def check_no_lowrank_factors(model: SequenceModel, what: str = "int8 quantization") -> None:
    """The int8 modules run embedding -> recurrent layers -> decoder: refuse the extra Linears of a
    low-rank model (rnnslim.lowrank bottlenecks in front of a layer, a two-Linear head)."""
    necks = getattr(model.rnn, "bottlenecks", None)
    if necks is not None or getattr(model.spec, "decoder_rank", 0):
        where = [f"rnn.bottlenecks.{k}" for k, n in enumerate(necks or []) if not isinstance(n, nn.Identity)]
        where += ["decoder_proj"] if getattr(model.spec, "decoder_rank", 0) else []
        raise ValueError(f"{what} does not support low-rank factors ({', '.join(where)}, from rnnslim.lowrank). "
                         "Its low-rank forms that int8 runs: a folded layer-0 input (lowrank targets [input], "
                         "layers [0]) and LSTMP (to_lstmp; dynamic / static modes only); or use weight-only "
                         "quantization (quantize_weights)")


def check_no_transform_coding(model: nn.Module) -> None:
    """int8 would replace weights stored as DCT coefficients / circulant blocks (rnnslim.transform)
    by dense int8 codes of the rebuilt matrices, silently dropping that storage: refuse instead."""
    enc = getattr(model, "tensor_encodings", None) or {}
    coded = sorted(n for n, e in enc.items() if e.get("encoding") in TRANSFORM_ENCODINGS)
    if coded:
        raise ValueError(f"int8 quantization would replace the transform-domain storage of {', '.join(coded[:4])}"
                         f"{' ...' if len(coded) > 4 else ''} ({enc[coded[0]]['encoding']}) with dense int8 codes; "
                         "quantize the coefficients with dct_sparsify's `bits` instead, or run int8 before the "
                         "transform stage")


def check_integer_model(model: SequenceModel, whole_sequence: bool = False) -> None:
    """Raise a clear error if IntegerRunner cannot run this model: streaming (the default), or
    `whole_sequence` (run_sequence / NAME_run), which also accepts bidirectional layers."""
    check_no_lowrank_factors(model, "IntegerRunner")
    kind = model.spec.input_kind
    if kind is InputKind.EMBEDDING and not isinstance(getattr(model, "embedding", None), IntegerEmbedding):
        raise ValueError("IntegerRunner needs an integer int8 model (quantize_int8_(model, "
                         "Int8Config(mode=Int8Mode.INTEGER))); this one's embedding is not integer")
    if kind is InputKind.LINEAR:
        proj = getattr(model, "input_proj", None)
        if not isinstance(proj, IntegerLinear) or proj.output is not LinearOutput.INT8:
            raise ValueError("IntegerRunner needs an integer int8 model; this one's input projection is "
                             f"a {type(proj).__name__}, not an integer Linear with int8 output")
        if hasattr(model, "input_act") and not isinstance(model.input_act, IntegerActivation):
            raise ValueError("IntegerRunner needs an integer int8 model; this one's input activation is a "
                             f"{type(model.input_act).__name__}, not an IntegerActivation table")
        if (model.spec.input_window > 1 or model.spec.input_padding) and not whole_sequence:
            raise ValueError(f"the input projection reads windows of {model.spec.input_window} frames (a Conv1d front "
                             "end): a streaming step cannot see the later frames; run the model on whole sequences "
                             "(IntegerRunner(model).run_sequence(x), exported C NAME_run)")
    if model.spec.readout not in (Readout.ALL, Readout.LAST):
        raise ValueError(f"IntegerRunner supports readout 'all' (one output per step) and 'last' (the final "
                         f"step's output); readout {model.spec.readout.value!r} is not supported (torch takes a "
                         "float32 mean over time, which the integer program cannot reproduce bit for bit)")
    for k, layer in enumerate(model.rnn.layers):
        if not isinstance(layer, IntegerRecurrent):
            raise ValueError(f"IntegerRunner needs an integer int8 model; rnn.layers.{k} is a "
                             f"{type(layer).__name__}, not an integer int8 layer")
        if layer.bidirectional and not whole_sequence:
            raise ValueError(f"rnn.layers.{k} is bidirectional: a streaming step cannot see the future; run the "
                             "model on whole sequences (IntegerRunner(model).run_sequence(x), exported C NAME_run)")
    dec = model.decoder
    if not isinstance(dec, IntegerLinear) or dec.output is not LinearOutput.FLOAT:
        raise ValueError("IntegerRunner needs the integer decoder (IntegerLinear with float output)")
