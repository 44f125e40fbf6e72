"""`rnnslim export --format tflite` (tflite.py): refusals, destination rules and the converter's child
process without TensorFlow; with tensorflow + tf_keras (the `tflite` extra) one tiny LSTM char model
converted once (module fixture), its manifest, and TFLite Micro running it next to the integer model."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.export import tflite
from rnnslim.export.c_check import random_streams
from rnnslim.export.destination import MARKER, ExportDestinationError, check_destination
from rnnslim.export.formats import export_model
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

HAS_TF = all(importlib.util.find_spec(p) is not None for p in ("tensorflow", "tf_keras"))
HAS_TFLM = importlib.util.find_spec("tflite_micro") is not None
needs_tf = pytest.mark.skipif(not HAS_TF, reason="tensorflow / tf_keras not installed (pip install 'rnnslim[tflite]')")
needs_tflm = pytest.mark.skipif(not HAS_TFLM, reason="tflite-micro not installed (pip install 'rnnslim[tflite]')")
VOCAB = 12
VOCAB_CHARS = [chr(97 + i) for i in range(VOCAB)]


def char_model(cell: str = "lstm", bidirectional: bool = False, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    spec = ModelSpec(cell=cell, input_kind=InputKind.EMBEDDING, input_size=VOCAB, embed_size=8,
                     layers=[LayerShape(hidden_size=12, bidirectional=bidirectional), LayerShape(hidden_size=10)],
                     output_size=VOCAB)
    model = SequenceModel(spec).eval()
    with torch.no_grad():  # larger weights than the default init: saturating gates, a wide logit range
        for p in model.rnn.parameters():
            p.mul_(3.0)
    return model


def calibration(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (32, 4), generator=g) for _ in range(2)]  # (T, B) ids


# ---- without TensorFlow ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda: char_model(bidirectional=True), "layer 0 is bidirectional"),
    (lambda: char_model(cell="rnn_tanh"), "LSTM and GRU"),
])
def test_refuses_what_a_tflite_cannot_hold(tmp_path, make, words):
    with pytest.raises(ValueError, match=words):
        export_model(make(), "tflite", tmp_path / "x", calibration=calibration())
    assert not (tmp_path / "x").exists()


def test_cli_refusal_is_one_line(tmp_path):
    save_model(char_model(bidirectional=True), tmp_path / "m")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "bidirectional" in lines[0]


def test_never_writes_over_the_input_model(tmp_path):
    save_model(char_model(), tmp_path / "m")
    model = load_model(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    for out in (tmp_path / "m", tmp_path / "m" / "model.json", tmp_path / "m" / "inside"):
        with pytest.raises(ExportDestinationError):
            export_model(model, "tflite", out, calibration=calibration())
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ExportDestinationError, match="not an rnnslim export directory"):
        check_destination(tmp_path / "x", "tflite", char_model())


def test_missing_tensorflow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(tflite, "_missing_packages", lambda: ["tensorflow"])
    with pytest.raises(ImportError, match=r"rnnslim\[tflite\]"):
        export_model(char_model(), "tflite", tmp_path / "x", calibration=calibration())


def test_a_converter_crash_is_one_error_naming_cell_and_mode(tmp_path, monkeypatch):
    crash = tmp_path / "crash.py"
    crash.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(tflite, "_missing_packages", lambda: [])
    monkeypatch.setattr(tflite, "CHILD", crash)
    with pytest.raises(tflite.TFLiteExportError, match=r"crashed \(segmentation fault\) on the GRU model.*int8"):
        export_model(char_model("gru"), "tflite", tmp_path / "x", calibration=calibration())
    assert not (tmp_path / "x").exists()


FAKE_CHILD = """import json, sys
from pathlib import Path
import numpy as np
d = Path(sys.argv[1])
n, steps = np.load(d / "streams.npy").shape[:2]
rng = np.random.default_rng(0)
(d / "model.tflite").write_bytes(b"TFL3")
np.save(d / "logits.npy", rng.standard_normal((n, steps, int(sys.argv[2]))).astype(np.float32))  # {what}
np.save(d / "keras_float_logits.npy", np.load(sys.argv[3]))
(d / "result.json").write_text(json.dumps({"ops": [], "tensor_types": {}, "interpreter": "fake", "state": "fake"}))
"""


def test_a_tflite_that_disagrees_is_not_written(tmp_path, monkeypatch):
    """A converted model whose outputs are unrelated to the model's (here random logits from a fake child,
    with the float layout right) fails the check: agreement near chance, nothing at `out`."""
    model = char_model()
    streams = random_streams(VOCAB, 10, tflite.CHECK_STEPS)
    np.save(tmp_path / "float.npy", tflite.float_logits(model, streams, 0))
    child = tmp_path / "child.py"
    child.write_text(FAKE_CHILD.replace("{what}", "unrelated outputs"))
    monkeypatch.setattr(tflite, "_missing_packages", lambda: [])
    monkeypatch.setattr(tflite, "CHILD", child)
    real_run = tflite.subprocess.run
    monkeypatch.setattr(tflite.subprocess, "run", lambda cmd, **kw: real_run(
        [*cmd, str(VOCAB), str(tmp_path / "float.npy")], **kw))
    with pytest.raises(tflite.TFLiteExportError, match=r"argmax agreement 0\.\d+ < 0\.9"):
        export_model(model, "tflite", tmp_path / "x", calibration=calibration(), check_streams=10)
    assert not (tmp_path / "x").exists()


def test_keras_gru_layout_swaps_reset_and_update_blocks():
    model = char_model("gru")
    w = tflite.keras_weights(model)
    H = 12
    wi = model.rnn.layers[0].weight_ih_l0.detach().numpy()  # (3H, E): r, z, n
    np.testing.assert_array_equal(w["rnn0_kernel"][:, :H], wi[H:2 * H].T)  # Keras z first
    np.testing.assert_array_equal(w["rnn0_kernel"][:, H:2 * H], wi[:H].T)
    assert w["rnn0_bias"].shape == (2, 3 * H)


# ---- with TensorFlow: one conversion for the module ----------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One conversion through the CLI: a saved char model with its task, calibrated from --data."""
    if not HAS_TF:
        pytest.skip("tensorflow / tf_keras not installed (pip install 'rnnslim[tflite]')")
    d = tmp_path_factory.mktemp("tfl")
    model = char_model()
    model.task_meta = {"task": "charlm", "vocab": VOCAB_CHARS}
    save_model(model, d / "m")
    rng = np.random.default_rng(0)
    (d / "text.txt").write_text("".join(rng.choice(VOCAB_CHARS, 12_000)))  # enough for 8 batches of 16 x 64
    res = CliRunner().invoke(app, ["export", str(d / "m"), "--format", "tflite", "--out", str(d / "lm"),
                                   "--data", str(d / "text.txt"), "--name", "lm", "--check", "10"])
    assert res.exit_code == 0, res.output
    return model, d / "lm", json.loads((d / "lm" / "tflite.json").read_text()), res.output


@needs_tf
def test_exports_a_full_integer_lstm(exported):
    _, out, manifest, said = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(["lm.tflite", "tflite.json", MARKER])
    assert manifest["tflite_bytes"] == (out / "lm.tflite").stat().st_size
    assert f"{out}/lm.tflite: {manifest['tflite_bytes']:,} bytes" in said and "TFLite Micro arena" in said
    assert manifest["calibration"] == {"sequences": 8 * 16, "steps_each": 64}  # the task's int8 calibration
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in manifest["ops"]
    assert manifest["tensor_types"].get("int16", 0) > 0 and manifest["tensor_types"]["int8"] > 0  # int16 cell state
    chk = manifest["check"]
    assert chk["ok"] and chk["streams"] == 10
    assert chk["argmax_agreement"] >= tflite.MIN_AGREEMENT
    assert chk["keras_float_vs_rnnslim_float_relative_max_diff"] < tflite.FLOAT_TOL
    assert 0 < chk["max_abs_logit_diff"] < 0.5 * (chk["reference_logit_range"][1] - chk["reference_logit_range"][0])
    assert manifest["versions"]["tensorflow"]
    check_destination(out, "tflite", exported[0])  # an earlier tflite export may be replaced


@needs_tf
@needs_tflm
def test_tflite_micro_runs_it_and_agrees_with_the_integer_model(exported):
    from tflite_micro.python.tflite_micro import runtime

    model, out, facts, _ = exported
    assert facts["tflite_micro"]["runs"] and facts["tflite_micro"]["arena_bytes"]["total"] > 0
    it = runtime.Interpreter.from_bytes((out / "lm.tflite").read_bytes(), arena_size=1 << 20)
    streams = random_streams(VOCAB, 4, 16, seed=7)
    got = []
    for s in streams:
        it.reset()  # the LSTM state variables back to zero: a new stream
        steps = []
        for t in s:
            it.set_input(np.array([[t]], np.int32), 0)
            it.invoke()
            steps.append(np.array(it.get_output(0)).reshape(-1))
        got.append(np.stack(steps))
    ref = tflite.integer_reference(model, model, calibration())
    want = tflite.integer_logits(ref, streams, 0)
    assert np.mean(np.stack(got).argmax(-1) == want.argmax(-1)) >= 0.9
    assert not np.allclose(np.stack(got)[:, 0], np.stack(got)[:, -1])  # the state carries between invokes


def test_child_imports_neither_torch_nor_rnnslim():
    """The child runs by path: TensorFlow and torch never share a process."""
    tree = ast.parse(Path(tflite.CHILD).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "tensorflow" in imported and not imported & {"torch", "rnnslim"}
