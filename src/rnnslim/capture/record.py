"""layout_record: a CaptureInfo for a SequenceModel that did not come from capture (a Keras or
ONNX import, a model rnnslim trained), so that user_view and evaluate call it in the caller's
layout: one data argument, batch first or time major, one output, no state passed."""

from __future__ import annotations

from rnnslim.models.capture_info import CaptureInfo
from rnnslim.models.sequence import InputKind, Readout, SequenceModel


def layout_record(model: SequenceModel, source_class: str, batch_first: bool = True) -> CaptureInfo:
    """The record of `model` called as model(x) -> out, x (B, T[, F]) (or (T, B[, F]))."""
    bt = ["B", "T"] if batch_first else ["T", "B"]
    features = [] if model.spec.input_kind is InputKind.EMBEDDING else ["F"]
    outputs = [[r] for r in bt] + [["F"]] if model.spec.readout is Readout.ALL else [["B"], ["F"]]
    return CaptureInfo(source_class=source_class, layout="batch_first" if batch_first else "time_major",
                       input_axes=bt + features, output_axes=outputs,
                       output_activation=model.spec.output_activation, arguments=["data"], argument_names=["x"],
                       returns="out", modules=[(0, model.rnn.num_layers)], module_kinds=["torch"])
