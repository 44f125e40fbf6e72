"""Which tensors pruning may touch: names, kinds, layers, tied weights, plain torch modules."""

from torch import nn

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.prune.targets import TargetKind, describe, prunable_tensors, target_names
from rnnslim.recurrent.gates import CellType


def _model(**kw):
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=12, embed_size=8,
                     layers=[LayerShape(hidden_size=8, bidirectional=True), LayerShape(hidden_size=8, proj_size=4)],
                     output_size=12, **kw)
    return SequenceModel(spec)


def test_sequence_model_kinds_and_layers():
    items = {t.name: t for t in prunable_tensors(_model())}
    assert items["embedding.weight"].kind is TargetKind.EMBEDDING
    assert items["decoder.weight"].kind is TargetKind.OUTPUT
    t = items["rnn.layers.0.weight_hh_l0_reverse"]
    assert (t.kind, t.layer, t.reverse, t.cell, t.shape) == (TargetKind.RECURRENT, 0, True, CellType.LSTM, (32, 8))
    assert items["rnn.layers.1.weight_ih_l0"].shape == (32, 16)
    assert items["rnn.layers.1.weight_hr_l0"].kind is TargetKind.PROJECTION
    assert not any("bias" in n for n in items)
    assert len(items) == 2 + 4 + 3


def test_filters():
    m = _model()
    assert target_names(m, [TargetKind.RECURRENT]) == ["rnn.layers.0.weight_hh_l0", "rnn.layers.0.weight_hh_l0_reverse",
                                                      "rnn.layers.1.weight_hh_l0"]
    assert target_names(m, ["input", "output"], layers=[1]) == ["rnn.layers.1.weight_ih_l0", "decoder.weight"]
    assert "rnn.layers.0" in describe(m, ["input"])


def test_tied_weights_listed_once():
    spec = ModelSpec(cell="gru", input_kind="embedding", input_size=12, embed_size=8,
                     layers=[LayerShape(hidden_size=8)], output_size=12, tie_weights=True)
    names = target_names(SequenceModel(spec))
    assert names.count("embedding.weight") == 1 and "decoder.weight" not in names


def test_linear_input_projection_counts_as_embedding():
    spec = ModelSpec(cell="gru", input_kind="linear", input_size=3, embed_size=8, layers=[LayerShape(hidden_size=8)],
                     output_size=2, readout="last")
    assert target_names(SequenceModel(spec), ["embedding"]) == ["input_proj.weight"]


def test_plain_multilayer_torch_module():
    lstm = nn.LSTM(4, 6, num_layers=3)
    items = prunable_tensors(lstm, ["input"])
    assert [(t.name, t.layer) for t in items] == [("weight_ih_l0", 0), ("weight_ih_l1", 1), ("weight_ih_l2", 2)]
    assert target_names(lstm, layers=[2]) == ["weight_ih_l2", "weight_hh_l2"]
