"""The empty dtype anchors of quantized layers are invisible to the code that scores and traces
weights: importance names and graph cut decisions are those of the same model without anchors."""

from __future__ import annotations

import copy

import pytest
import torch

from rnnslim.graph.trace import _is_cut
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.importance import _names
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.int8 import Int8Config, quantize_int8_
from rnnslim.quantize.targets import Target
from rnnslim.utils.params import ANCHOR, is_anchor, weight_parameters


def _model() -> SequenceModel:
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=6, embed_size=4,
                     layers=[LayerShape(hidden_size=8), LayerShape(hidden_size=8)], output_size=6)
    return SequenceModel(spec).eval()


def _without_anchors(model: SequenceModel) -> SequenceModel:
    """The same model as before anchors existed: every dtype_anchor parameter removed."""
    bare = copy.deepcopy(model)
    for m in bare.modules():
        m._parameters.pop(ANCHOR, None)
    return bare


QUANTIZERS = {
    "weight_only": lambda m: quantize_(m, WeightOnly(bits=8, group_size=None, targets=(Target.RNN, Target.LINEAR))),
    "int8": lambda m: quantize_int8_(m, Int8Config()),
}


@pytest.mark.parametrize("how", sorted(QUANTIZERS))
def test_quantized_model_gives_the_names_and_cuts_it_had_without_anchors(how):
    model = QUANTIZERS[how](_model())
    anchors = [n for n, _ in model.named_parameters() if n.endswith(ANCHOR)]
    assert anchors  # the model does hold anchors, so the comparison below means something
    bare = _without_anchors(model)
    assert not any(n.endswith(ANCHOR) for n, _ in bare.named_parameters())
    assert _names(model, None) == _names(bare, None)
    assert not any(n.endswith(ANCHOR) for n in _names(model, None))
    cuts = [p for p, m in model.named_modules() if _is_cut(m)]
    assert cuts == [p for p, m in bare.named_modules() if _is_cut(m)]


def test_is_anchor_needs_the_name_and_an_empty_tensor():
    empty, full = torch.nn.Parameter(torch.empty(0)), torch.nn.Parameter(torch.ones(2))
    assert is_anchor("rnn.layers.0.dtype_anchor", empty) and is_anchor(ANCHOR, empty)
    assert not is_anchor("rnn.layers.0.dtype_anchor", full) and not is_anchor("rnn.bias", empty)
    layer = torch.nn.Linear(2, 2)
    layer.register_parameter(ANCHOR, empty)
    assert [n for n, _ in weight_parameters(layer)] == ["weight", "bias"]
