"""Exit heads: what add_exits_ accepts and refuses (atomically), and the save/load round trip
through rnnslim's format (real bytes, thresholds included; models without exits unchanged)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rnnslim.early_exit import EarlyExit, add_exits_, exit_predict, exits_of
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, Readout, SequenceModel


def spec(cell="lstm", layers=3, readout=Readout.LAST, kind=InputKind.LINEAR, sizes=(12, 10, 9)) -> ModelSpec:
    return ModelSpec(cell=cell, input_kind=kind, input_size=3, embed_size=8,
                     layers=[LayerShape(hidden_size=h) for h in sizes[:layers]], output_size=4, readout=readout)


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_head_per_layer_but_the_last(cell):
    m = SequenceModel(spec(cell)).eval()
    add_exits_(m, EarlyExit(hidden=6))
    heads = exits_of(m).heads
    assert len(heads) == 2 and heads[0][0].in_features == 12 and heads[1][0].in_features == 10
    assert heads[1][-1].out_features == 4 and m.exits.threshold is None
    x = torch.randn(5, 2, 3)
    before = SequenceModel(spec(cell)).eval()
    before.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("exits.")})
    torch.testing.assert_close(m(x)[0], before(x)[0], rtol=0, atol=0)  # the forward is untouched


@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda: SequenceModel(spec(readout=Readout.ALL)), ValueError, "language model"),
    (lambda: SequenceModel(spec(kind=InputKind.EMBEDDING, readout=Readout.ALL)), ValueError, "language model"),
    (lambda: SequenceModel(spec(layers=1)), ValueError, "at least 2 recurrent layers"),
    (lambda: nn.LSTM(3, 8, num_layers=3), TypeError, "SequenceModel"),
])
def test_refusals_leave_the_model_untouched(build, error, match):
    m = build()
    before = snapshot(m)
    with pytest.raises(error, match=match):
        add_exits_(m, EarlyExit())
    assert exits_of(m) is None and list(m.state_dict()) == list(before)


def test_forecaster_and_bad_weights_are_refused_atomically():
    m = SequenceModel(spec())
    m.task_meta = {"task": "forecast"}
    with pytest.raises(ValueError, match="forecast"):
        add_exits_(m)
    m.task_meta = {"task": "classify"}
    with pytest.raises(ValueError, match="3 exits"):
        add_exits_(m, EarlyExit(weights=[1.0, 1.0]))
    with pytest.raises(ValueError, match="not all 0"):
        add_exits_(m, EarlyExit(weights=[0.0, 0.0, 0.0]))
    assert exits_of(m) is None
    add_exits_(m)
    with pytest.raises(ValueError, match="already has early exits"):
        add_exits_(m)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_save_load_round_trip(cell, tmp_path):
    m = SequenceModel(spec(cell)).eval()
    m.task_meta = {"task": "classify", "classes": list("abcd")}
    add_exits_(m, EarlyExit(hidden=5))
    m.exits.set_thresholds(threshold=0.7, stream_threshold=0.8)
    save_model(m, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert [r["kind"] for r in manifest["modules"]] == ["early_exit_heads"]
    assert manifest["modules"][0]["config"]["threshold"] == 0.7
    assert "exits.heads.1.2.weight" in manifest["tensors"]
    back = load_model(tmp_path / "m")
    assert back.exits.threshold == 0.7 and back.exits.stream_threshold == 0.8
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    x = torch.randn(6, 5, 3)
    a, b = exit_predict(m, x), exit_predict(back, x)
    assert torch.equal(a.logits, b.logits) and a.layer_steps == b.layer_steps
    a, b = exit_predict(m, x, early_time=True), exit_predict(back, x, early_time=True)
    assert torch.equal(a.logits, b.logits) and a.layer_steps == b.layer_steps


def test_models_without_exits_store_as_before_and_bad_records_are_refused(tmp_path):
    m = SequenceModel(spec()).eval()
    save_model(m, tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "model.json").read_text())["modules"] == []
    add_exits_(m)
    save_model(m, tmp_path / "ee")
    path = tmp_path / "ee" / "model.json"
    manifest = json.loads(path.read_text())
    manifest["modules"][0]["config"]["threshold"] = -1  # hand-edited: refused with the field named
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="threshold"):
        load_model(tmp_path / "ee")
