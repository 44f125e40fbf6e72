"""save_model / load_model keep a captured model's CaptureInfo (manifest field "capture"), and
models without one keep their manifests as before (no capture field, no output_activation)."""

from __future__ import annotations

import json

import pytest
import torch

from rnnslim.capture import capture, user_view
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from tests.capture.user_modules import ExamplesWordLM


def test_captured_model_round_trips_with_its_record(tmp_path):
    torch.manual_seed(0)
    m = ExamplesWordLM("GRU").eval()
    x = torch.randint(0, 30, (5, 3))
    model = capture(m, (x, m.init_hidden(3)))
    save_model(model, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert manifest["capture"]["source_class"] == "ExamplesWordLM"
    assert manifest["spec"]["output_activation"] == "log_softmax"
    loaded = load_model(tmp_path / "m")
    assert loaded.capture_info == model.capture_info and loaded.spec == model.spec
    with torch.no_grad():
        a, b = m(x, m.init_hidden(3))[0], user_view(loaded)(x, m.init_hidden(3))[0]
    assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max())


def test_plain_models_have_no_capture_field(tmp_path):
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=7, embed_size=4,
                     layers=[LayerShape(hidden_size=4)], output_size=7)
    save_model(SequenceModel(spec), tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert "capture" not in manifest and "output_activation" not in manifest["spec"]
    assert getattr(load_model(tmp_path / "m"), "capture_info", None) is None


def test_malformed_capture_field_is_refused(tmp_path):
    torch.manual_seed(0)
    m = ExamplesWordLM("GRU").eval()
    model = capture(m, (torch.randint(0, 30, (5, 3)), None))
    save_model(model, tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    manifest = json.loads(path.read_text())
    manifest["capture"]["input_axes"] = "B,T"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="invalid field capture"):
        load_model(tmp_path / "m")
