"""task_for_model on captured / imported models that record no task: a clear refusal naming
where the model came from, instead of a charlm vocabulary error."""

from __future__ import annotations

import pytest
import torch

from rnnslim.capture import capture
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.tasks import task_for_model
from rnnslim.tasks.origin import missing_task_message
from tests.capture.user_modules import TinyGRU


def _char_model() -> SequenceModel:
    return SequenceModel(ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                                   layers=[LayerShape(hidden_size=4)], output_size=5))


@pytest.fixture
def captured(tmp_path):
    torch.manual_seed(0)
    model = capture(TinyGRU().eval(), (torch.randn(2, 5, 3),))
    save_model(model, tmp_path / "m")
    return load_model(tmp_path / "m")


def test_captured_model_without_task_names_its_class_and_the_fix(captured):
    with pytest.raises(ValueError) as e:
        task_for_model(captured)
    msg = str(e.value)
    assert "captured from TinyGRU" in msg and "records no task" in msg
    assert "--task" in msg and "task_meta" in msg and "vocab" not in msg


def test_captured_model_with_a_task_is_not_refused_for_its_origin(captured):
    captured.task_meta = {"task": "classify"}
    assert missing_task_message(captured, ["classify"]) is None


def test_imported_model_without_task_names_its_file(tmp_path):
    model = _char_model()
    model.history = [{"op": "import", "file": "kws.keras", "format": "keras"}]
    save_model(model, tmp_path / "m")
    with pytest.raises(ValueError, match=r"imported from kws\.keras and records no task.*--task"):
        task_for_model(load_model(tmp_path / "m"))


def test_plain_model_without_task_still_defaults_to_charlm():
    model = _char_model()
    assert missing_task_message(model, ["charlm"]) is None
