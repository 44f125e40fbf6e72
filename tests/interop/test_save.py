"""rnnslim import / save_imported: the imported model is saved with its source's name and
sha256, loads back equal, and is never written over the input or a foreign path."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

pytest.importorskip("onnx", reason="onnx is an optional extra (pip install 'rnnslim[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (pip install 'rnnslim[onnx]')")

from rnnslim.cli import app  # noqa: E402
from rnnslim.interop.save import check_import_destination, format_of, import_file, save_imported  # noqa: E402
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.utils.hashing import file_sha256  # noqa: E402


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.fc = nn.Embedding(11, 4), nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.rnn(self.emb(x))[0])


@pytest.fixture()
def onnx_file(tmp_path):
    path = tmp_path / "src" / "tagger.onnx"
    path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tagger().eval(), (torch.randint(0, 11, (2, 5)),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    return path


def test_saved_import_keeps_its_source_and_loads_back_equal(onnx_file, tmp_path):
    model = import_file(onnx_file)
    out = save_imported(model, onnx_file, tmp_path / "m", task="wordlm")
    manifest = json.loads((out / "model.json").read_text())
    record = manifest["imported_from"]
    assert record["file"] == "tagger.onnx" and record["format"] == "onnx"
    assert record["sha256"] == file_sha256(onnx_file) and record["parity_max_rel_error"] <= 1e-5
    assert manifest["history"][0]["op"] == "import" and manifest["task"] == {"name": "tagger", "task": "wordlm"}
    loaded = load_model(out)
    x = torch.randint(0, 11, (6, 2))
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def test_destination_rules(onnx_file, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="is the input file"):
        check_import_destination(onnx_file, onnx_file)
    with pytest.raises(ValueError, match="holds the input file"):
        check_import_destination(onnx_file.parent, onnx_file)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an rnnslim model directory"):
        check_import_destination(tmp_path / "notes", onnx_file)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="is not a directory"):
        check_import_destination(tmp_path / "file", onnx_file)
    os.symlink(tmp_path / "new", tmp_path / "link")
    with pytest.raises(ValueError, match="symbolic link"):
        check_import_destination(tmp_path / "link", onnx_file)
    (tmp_path / "work" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "deeper")
    with pytest.raises(ValueError, match="current directory"):
        check_import_destination(tmp_path / "work", onnx_file)
    assert check_import_destination(tmp_path / "new" / "m", onnx_file) == tmp_path / "new" / "m"
    with pytest.raises(ValueError, match="unknown model file type"):
        format_of(tmp_path / "m.pt")


def test_cli_import_writes_a_model_and_refuses_foreign_paths(onnx_file, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(onnx_file), "-o", str(tmp_path / "m"), "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.stdout.strip().splitlines()[-1])
    assert facts["spec"]["cell"] == "gru" and facts["parity_max_rel_error"] <= 1e-5
    assert load_model(tmp_path / "m").spec.output_size == 3
    again = runner.invoke(app, ["import", str(onnx_file), "-o", str(tmp_path / "m")])  # an earlier model: replaced
    assert again.exit_code == 0, again.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    res = runner.invoke(app, ["import", str(onnx_file), "-o", str(tmp_path / "mine")])
    assert res.exit_code == 2 and "not an rnnslim model directory" in res.output
    assert (tmp_path / "mine" / "a.txt").read_text() == "x"
    res = runner.invoke(app, ["import", str(onnx_file), "-o", str(tmp_path / "x"), "--task", "nope"])
    assert res.exit_code == 2 and "unknown task" in res.output
