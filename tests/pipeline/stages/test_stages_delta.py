"""Pipeline stage `delta` (after int8_integer): thresholds stored on the model and measured."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from rnnslim.models.sequence import SequenceModel
from rnnslim.pipeline.stage import StageContext, get_stage, parse_stage
from rnnslim.quantize.int8.delta import delta_thresholds
from rnnslim.tasks.charlm import CharLMTask

TEXT = "".join(f"to be or not to be, that is question {i}. " for i in range(200))


@pytest.fixture(scope="module")
def task():
    return CharLMTask(text=TEXT)


def _integer(task, tmp_path):
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(cell="gru", hidden_size=32, num_layers=2)).eval()
    cls, fn = get_stage("int8_integer")
    return fn(model, cls.model_validate({"kind": "int8_integer", "calibration_batches": 1}),
              StageContext(task=task, work_dir=tmp_path))


def test_parse():
    assert parse_stage({"kind": "delta"}).threshold == 1
    assert parse_stage({"kind": "delta", "threshold": {1: 4}}).threshold == {1: 4}
    with pytest.raises(ValidationError):
        parse_stage({"kind": "delta", "measure_steps": -1})


def test_stage_sets_thresholds_and_measures(task, tmp_path):
    model = _integer(task, tmp_path)
    cls, fn = get_stage("delta")
    ctx = StageContext(task=task, work_dir=tmp_path)
    out = fn(model, cls.model_validate({"kind": "delta", "threshold": {1: 3}, "measure_steps": 300}), ctx)
    assert delta_thresholds(out) == [None, 3] and ctx.record["thresholds"] == [None, 3]
    measured = ctx.record["measured"]
    if isinstance(measured, str):  # no C compiler here
        pytest.skip(measured)
    assert measured["steps"] == 300 and 0.0 < measured["skipped_fraction"] < 1.0


def test_stage_refuses_a_float_model(task, tmp_path):
    torch.manual_seed(0)
    model = SequenceModel(task.model_spec(cell="lstm", hidden_size=16, num_layers=1))
    cls, fn = get_stage("delta")
    with pytest.raises(ValueError, match="int8_integer"):
        fn(model, cls.model_validate({"kind": "delta"}), StageContext(task=task, work_dir=tmp_path))
