"""`rnnslim export`: the verb end to end, JSON facts, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

from int8_models import integer_model, needs_kernel
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.io.format import save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

runner = CliRunner()


@needs_kernel
def test_export_c_checks_and_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    save_model(integer_model("lstm", hidden=(32, 16)), tmp_path / "m")
    r = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "c"), "--name", "kws",
                            "--check", "100", "--build", "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.stdout.strip().splitlines()[-1])
    assert facts["check"]["bit_exact"] and facts["check"]["streams"] == 100
    assert Path(facts["library"]) == tmp_path / "c" / "libkws.so"
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(
        ["kws.c", "kws.h", "rnnslim_core.h", "model.json", "libkws.so", "libkws.so.sha256", "rnnslim-export.json"])
    human = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "c2"), "--check", "0"])
    assert human.exit_code == 0 and "flash" in human.output and "RAM" in human.output


def test_float_model_to_c_names_the_fix(tmp_path):
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=10, embed_size=8,
                     layers=[LayerShape(hidden_size=16)], output_size=10)
    save_model(SequenceModel(spec), tmp_path / "m")
    r = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "int8_integer" in r.output and "c-fp32" in r.output
    assert not (tmp_path / "c").exists()
    r = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "c"), "--format", "coreml"])
    assert r.exit_code == 2 and "unknown export format" in r.output


def test_onnx_int8_and_torch_formats(tmp_path):
    """Both files the CLI writes run and compute the model: the .pt2 exactly (float weights),
    the int8 ONNX within int8 noise (its decoder MatMul is quantized; ORT has no int8 GRU)."""
    import numpy as np
    import pytest
    import torch

    pytest.importorskip("onnxruntime")
    from rnnslim.export.onnx import OrtStepRunner
    from rnnslim.export.torch_export import load_torch_program

    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=10, embed_size=8,
                     layers=[LayerShape(hidden_size=16)], output_size=10)
    torch.manual_seed(0)
    model = SequenceModel(spec).eval()
    save_model(model, tmp_path / "m")
    for fmt, out in (("onnx-int8", "step.onnx"), ("torch", "step.pt2")):
        r = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", fmt, "--out", str(tmp_path / out), "--json"])
        assert r.exit_code == 0, r.output
        facts = json.loads(r.stdout.strip().splitlines()[-1])
        assert facts["format"].startswith(fmt) and (tmp_path / out).stat().st_size > 0
    x = np.random.default_rng(1).integers(0, 10, size=(20, 3)).astype(np.int64)  # (T, B) token ids
    with torch.no_grad():
        ref = model(torch.from_numpy(x))[0].numpy()  # (T, B, V)
    program = load_torch_program(tmp_path / "step.pt2").sequence(x).numpy()
    assert program.shape == ref.shape and np.abs(program - ref).max() < 1e-5
    int8 = OrtStepRunner(tmp_path / "step.onnx").sequence(x)
    noise = float(((int8 - ref) ** 2).mean())
    assert int8.shape == ref.shape and 0 < noise and 10 * np.log10(float((ref**2).mean()) / noise) > 25


def test_an_edited_directory_says_how_to_export_it_and_that_way_works(tmp_path):
    """`rnnslim export DIR` of a save_edited directory: one line naming the user's class and the
    Python steps; following them (load_edited, capture, save_model) gives a model that exports."""
    import torch
    from examples_lm import ExamplesWordLM

    from rnnslim.capture import capture
    from rnnslim.io.edited import save_edited
    from rnnslim.prune import StructuredPruning, prune_units_
    from rnnslim.prune.structured.history import load_edited

    torch.manual_seed(0)
    m, x = ExamplesWordLM().eval(), torch.randint(0, 30, (5, 2))
    prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=lambda mod: (x, mod.init_hidden(2)))
    save_edited(m, tmp_path / "edited")
    r = runner.invoke(app, ["export", str(tmp_path / "edited"), "--out", str(tmp_path / "m.onnx"), "--format", "onnx"])
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert "is an edited copy of your own class ExamplesWordLM" in r.output and "then: rnnslim export OUT" in r.output
    assert not (tmp_path / "m.onnx").exists()
    back = load_edited(ExamplesWordLM(), tmp_path / "edited")
    save_model(capture(back, (x, None)), tmp_path / "captured")
    r = runner.invoke(app, ["export", str(tmp_path / "captured"), "--out", str(tmp_path / "m.pt2"), "--format", "torch"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.pt2").is_file()
