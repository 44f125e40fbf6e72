"""Every quantized layer kind answers `next(module.parameters())` with a float dtype / device anchor
that stores nothing, and the user's own evaluation loop runs after weight-only int4 / int8."""

from __future__ import annotations

import copy

import pytest
import torch
from examples_lm import ExamplesWordLM, corpus, evaluate, train_briefly
from torch import nn

from rnnslim.io.format import stored_tensors
from rnnslim.prune.structured.history import load_edited, save_edited
from rnnslim.quantize.anchor import ANCHOR
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.formats import int_format
from rnnslim.quantize.int8.emulated import Int8Embedding, Int8Linear, Int8Recurrent
from rnnslim.quantize.int8.integer import IntegerEmbedding, IntegerLinear, IntegerRecurrent
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent

INT4 = int_format(4, 8)
LAYERS = {
    "int8 recurrent": lambda: Int8Recurrent.from_float(nn.LSTM(4, 6), "dynamic"),
    "int8 linear": lambda: Int8Linear.from_float(nn.Linear(4, 3), "dynamic"),
    "int8 embedding": lambda: Int8Embedding.from_float(nn.Embedding(9, 4)),
    "integer recurrent": lambda: IntegerRecurrent("gru", 4, 6),
    "integer linear": lambda: IntegerLinear(4, 3),
    "integer embedding": lambda: IntegerEmbedding(9, 4),
    "weight-only recurrent": lambda: QuantRecurrent.from_float(nn.GRU(8, 8, bias=False), INT4),
    "weight-only linear": lambda: QuantLinear.from_float(nn.Linear(8, 3, bias=False), INT4),
    "weight-only embedding": lambda: QuantEmbedding.from_float(nn.Embedding(9, 8), INT4),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=list(LAYERS))
def test_each_quantized_kind_has_a_float_anchor_that_stores_nothing(make):
    q = make()
    first = next(q.parameters())
    assert first is getattr(q, ANCHOR) and first.dtype == torch.float32 and first.numel() == 0
    assert not first.requires_grad
    sd = q.state_dict()
    assert ANCHOR not in sd and not any(k.endswith(ANCHOR) for k in stored_tensors(q))
    fresh = make()
    fresh.load_state_dict(sd)  # strict: the anchor is never missing
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in sd.items())
    assert next(copy.deepcopy(q).double().parameters()).dtype == torch.float64  # follows .to() / .double()


def test_anchor_takes_the_replaced_layers_float_dtype_and_an_old_state_dict_with_it_loads():
    q = Int8Linear.from_float(nn.Linear(4, 3).double(), "dynamic")
    assert next(q.parameters()).dtype == torch.float64
    sd = {**q.state_dict(), ANCHOR: torch.empty(0)}  # a copy that stored the anchor loads too
    Int8Linear("dynamic", 4, 3).load_state_dict(sd)


@pytest.fixture(scope="module")
def trained():
    data = corpus()
    torch.manual_seed(0)
    return train_briefly(ExamplesWordLM("LSTM"), data), data


@pytest.mark.parametrize("bits", [4, 8])
def test_the_examples_evaluation_loop_runs_after_weight_only_quantization(trained, bits, tmp_path):
    """ExamplesWordLM.init_hidden calls next(self.parameters()): it must not hit StopIteration and
    the loop's loss stays near the float model's, also after save_edited / load_edited."""
    float_model, data = trained
    ref = evaluate(float_model, data)
    m = copy.deepcopy(float_model)
    quantize_(m, WeightOnly(bits=bits, group_size=4))  # embedding, LSTM and decoder: no float weight left
    assert all(p.numel() == 0 or p.dim() == 1 for p in m.parameters())  # anchors and biases only
    assert next(m.parameters()).dtype == torch.float32
    loss = evaluate(m, data)
    assert loss == pytest.approx(ref, rel=0.05 if bits == 4 else 0.01)
    save_edited(m, tmp_path / "q")
    back = load_edited(ExamplesWordLM("LSTM"), tmp_path / "q")
    assert evaluate(back, data) == pytest.approx(loss, abs=1e-6)
    back.load_state_dict(back.state_dict())  # strict state dict round trip


def _without_anchors(model: nn.Module) -> nn.Module:
    from rnnslim.quantize.anchor import DtypeAnchored

    bare = copy.deepcopy(model)
    for mod in bare.modules():
        if isinstance(mod, DtypeAnchored):
            del mod._parameters[ANCHOR]
    return bare


@pytest.mark.parametrize("mode", ["dynamic", "integer"])
def test_anchors_change_no_reported_size(mode):
    """size_stats (parameters, aux, artifact bytes), stored bytes and per-step weight bytes of an int8
    model are those of the same model with its anchors removed."""
    from int8_models import integer_model

    from rnnslim.measure.size import size_stats
    from rnnslim.measure.weight_bytes import module_bytes_per_step
    from rnnslim.models.sequence import SequenceModel
    from rnnslim.quantize.int8 import Int8Config, quantize_int8_
    from rnnslim.results import stored_bytes

    m = integer_model("lstm", hidden=(12, 8), vocab=20, embed=10, out=20)
    if mode == "dynamic":  # a float model of the same shape, int8 dynamic
        m = quantize_int8_(SequenceModel(m.spec).eval(), Int8Config(mode="dynamic"))
    assert sum(1 for n, _ in m.named_parameters() if n.endswith(ANCHOR)) >= 3
    bare = _without_anchors(m)
    assert size_stats(m) == size_stats(bare).model_copy(update={"artifact": size_stats(m).artifact})
    assert stored_bytes(m) == stored_bytes(bare) and module_bytes_per_step(m) == module_bytes_per_step(bare)
