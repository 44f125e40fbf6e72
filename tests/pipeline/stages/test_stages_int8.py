"""Pipeline stages int8_dynamic / int8_static / int8_integer."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage, stage_kinds
from rnnslim.quantize.int8.emulated import Int8Recurrent
from rnnslim.quantize.int8.integer import IntegerRecurrent
from rnnslim.tasks.charlm import CharLMTask

TEXT = "".join(f"to be or not to be, that is question {i}. " for i in range(200))


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=TEXT)


def _model(task, cell="lstm"):
    torch.manual_seed(0)
    return SequenceModel(task.model_spec(cell=cell, hidden_size=32, num_layers=2)).eval()


def test_kinds_are_registered_and_parse():
    assert {"int8_dynamic", "int8_static", "int8_integer"} <= set(stage_kinds())
    cfg = parse_stage({"kind": "int8_static", "observer": "percentile", "percentile": 99.9, "calibration_batches": 2})
    assert cfg.observer.value == "percentile" and cfg.calibration_batches == 2
    assert parse_stage({"kind": "int8_integer", "calibration_batches": 0}).calibration_batches == 0
    with pytest.raises(ValidationError):
        parse_stage({"kind": "int8_dynamic", "calibration_batches": 3})  # dynamic needs no data
    with pytest.raises(ValidationError):
        parse_stage({"kind": "int8_static", "calibration_batches": 0})
    with pytest.raises(ValidationError, match="whole model"):
        parse_stage({"kind": "int8_integer", "quantize_embedding": False})
    with pytest.raises(ValidationError):
        parse_stage({"kind": "int8_static", "observer": "median"})


@pytest.mark.parametrize("kind, layer_type", [("int8_dynamic", Int8Recurrent), ("int8_static", Int8Recurrent),
                                              ("int8_integer", IntegerRecurrent)])
def test_stage_runs_and_records(task, tmp_path, kind, layer_type):
    cls, fn = get_stage(kind)
    cfg = cls.model_validate({"kind": kind, **({} if kind == "int8_dynamic" else {"calibration_batches": 2})})
    ctx = StageContext(task=task, work_dir=tmp_path)
    model = _model(task, "gru" if kind == "int8_static" else "lstm")
    before = task.evaluate(model, "valid", max_steps=300)["loss"]
    out = fn(model, cfg, ctx)
    assert all(isinstance(layer, layer_type) for layer in out.rnn.layers)
    assert ctx.record["mode"] == kind.removeprefix("int8_")
    assert ctx.record["tensor_bytes_after"] < 0.5 * ctx.record["tensor_bytes_before"]  # tiny model: tables, scales
    assert (ctx.record["calibration"] is None) == (kind == "int8_dynamic")
    after = task.evaluate(out, "valid", max_steps=300)["loss"]
    assert abs(after - before) < 0.02 * before
