"""An export is named after the model (where it was loaded from), not "model", unless --name says otherwise."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnslim.export.c_float import export_c_float
from rnnslim.export.c_names import model_c_name
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel


@pytest.mark.parametrize(("source", "expected"), [
    ("runs/lm-small/model/model.json", "lm_small"),  # a train / compress run: RUN/model/
    ("exports/charlstm_256x2/model.json", "charlstm_256x2"),  # a model directory
    ("runs/lm-small/stages/02-finetune/model/model.json", "lm_small_02_finetune"),  # a compress stage
    ("../shared/models/charlstm-512x2.json", "charlstm_512x2"),  # a reference model: NAME.json
    ("/model.json", "from_meta"),  # no directory name to go by: the task meta's name
])
def test_the_default_name_comes_from_where_the_model_was_loaded(source, expected):
    model = SimpleNamespace(source_path=source, task_meta={"name": "from-meta"})
    assert model_c_name(model) == expected
    assert model_c_name(model, "My Net") == "my_net"  # --name wins


def test_without_a_source_the_task_meta_name_or_model():
    assert model_c_name(SimpleNamespace(task_meta={"name": "kws-13"})) == "kws_13"
    assert model_c_name(SimpleNamespace(task_meta=None)) == "model"


def test_a_saved_run_exports_under_the_run_name(tmp_path: Path):
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                     layers=[LayerShape(hidden_size=6)], output_size=5)
    save_model(SequenceModel(spec).eval(), tmp_path / "runs" / "kws-tiny" / "model")
    facts = export_c_float(load_model(tmp_path / "runs" / "kws-tiny"), tmp_path / "c")
    assert facts.name == "kws_tiny" and (tmp_path / "c" / "kws_tiny.h").is_file()
    assert "kws_tiny_step(" in (tmp_path / "c" / "kws_tiny.h").read_text()
