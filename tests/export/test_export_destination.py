"""Where an export may write (destination.py): never over its input, a model, a symlink, a special
file or a file rnnslim did not create; an earlier export is replaced. CLI and Python API."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from int8_models import integer_model
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.export.c_float import export_c_float
from rnnslim.export.c_source import export_c
from rnnslim.export.destination import MARKER, ExportDestinationError, check_destination, place_file
from rnnslim.export.formats import export_model
from rnnslim.export.torch_export import export_torch_program
from rnnslim.io.format import load_model, save_model
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

runner = CliRunner()


def _tree(root: Path) -> dict[str, str]:
    """{relative path: sha256 / link target / 'dir' / 'fifo'} of everything under `root` (links not followed)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_fifo():
                out[rel] = "fifo"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """tmp_path with an int8 integer model `q`, a float model `f` and a user's notes.txt; cwd there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    save_model(integer_model("gru", hidden=(8,), vocab=6, embed=4, out=6), tmp_path / "q")
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=6, embed_size=4,
                     layers=[LayerShape(hidden_size=8)], output_size=6)
    save_model(SequenceModel(spec).eval(), tmp_path / "f")
    (tmp_path / "notes.txt").write_text("a user's file\n")
    return tmp_path


def _refused(sandbox: Path, args: list[str], why: str) -> None:
    """`rnnslim export ARGS` exits 2 with one `error:` line containing `why`, and nothing under the
    sandbox changed (the cache folder aside)."""
    before = _tree(sandbox)
    r = runner.invoke(app, ["export", *args])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and why in r.output and "refusing" in r.output, r.output
    assert {k: v for k, v in _tree(sandbox).items() if not k.startswith("cache")} == {
        k: v for k, v in before.items() if not k.startswith("cache")}


def test_c_export_onto_its_input_model_directory_is_refused(sandbox):
    _refused(sandbox, ["q", "--format", "c", "--check", "0", "--out", "q"], "is the input model's directory")
    assert load_model(sandbox / "q") is not None


def test_onnx_over_the_input_manifest_is_refused_even_with_force(sandbox):
    _refused(sandbox, ["f", "--format", "onnx", "--out", "f/model.json"], "is the input model's file")
    _refused(sandbox, ["f", "--format", "onnx", "--force", "--out", "f/model.json"], "is the input model's file")
    _refused(sandbox, ["f", "--format", "torch", "--force", "--out", "f/model.safetensors"], "input model's file")


def test_a_path_inside_the_input_directory_is_refused(sandbox):
    _refused(sandbox, ["f", "--format", "onnx", "--out", "f/sub/step.onnx"], "inside the input model's directory")
    _refused(sandbox, ["q", "--format", "c", "--check", "0", "--out", "q/c"], "inside the input model's directory")


def test_the_input_through_a_symlinked_model_path_is_refused(sandbox):
    (sandbox / "alias").symlink_to(sandbox / "f", target_is_directory=True)
    _refused(sandbox, ["alias", "--format", "onnx", "--force", "--out", "f/model.json"], "input model's file")


def test_another_models_files_and_directory_are_refused(sandbox):
    _refused(sandbox, ["f", "--format", "onnx", "--force", "--out", "q/model.safetensors"], "is part of a model")
    _refused(sandbox, ["f", "--format", "onnx", "--out", "q/step.onnx"], "inside a model directory")
    _refused(sandbox, ["q", "--format", "c-fp32", "--out", "f"], "")  # a float model's folder is no export
    (sandbox / "loose.json").write_text("{}")
    (sandbox / "loose.safetensors").write_bytes(b"x")
    _refused(sandbox, ["f", "--format", "onnx", "--force", "--out", "loose.json"], "is part of a model")


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_an_existing_file_rnnslim_did_not_write_needs_force(sandbox, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    _refused(sandbox, ["f", "--format", fmt, "--out", "notes.txt"], "not written by an rnnslim export")
    r = runner.invoke(app, ["export", "f", "--format", fmt, "--force", "--out", "notes.txt"])
    assert r.exit_code == 0, r.output
    assert (sandbox / "notes.txt").read_bytes() != b"a user's file\n"
    r = runner.invoke(app, ["export", "f", "--format", fmt, "--out", "notes.txt"])  # now an rnnslim export
    assert r.exit_code == 0, r.output


def test_symlinks_fifos_and_odd_paths_are_refused(sandbox):
    (sandbox / "to_notes").symlink_to(sandbox / "notes.txt")
    (sandbox / "to_model").symlink_to(sandbox / "f" / "model.json")
    (sandbox / "dangling").symlink_to(sandbox / "nowhere")
    (sandbox / "to_dir").symlink_to(sandbox / "q", target_is_directory=True)
    os.mkfifo(sandbox / "fifo")
    for out in ("to_notes", "to_model", "dangling"):
        _refused(sandbox, ["f", "--format", "torch", "--force", "--out", out], "is a symbolic link")
    _refused(sandbox, ["q", "--format", "c", "--check", "0", "--out", "to_dir"], "is a symbolic link")
    _refused(sandbox, ["f", "--format", "torch", "--force", "--out", "fifo"], "not a regular file")
    _refused(sandbox, ["f", "--format", "torch", "--out", "/"], "file-system root")
    (sandbox / "w").mkdir()
    os.chdir(sandbox / "w")
    _refused(sandbox, ["../q", "--format", "c", "--check", "0", "--out", "."], "current directory")
    os.chdir(sandbox)
    _refused(sandbox, ["f", "--format", "torch", "--out", "notes.txt/step.pt2"], "is not a directory")
    _refused(sandbox, ["f", "--format", "torch", "--out", "x" * 250], "file name too long")
    assert not (sandbox / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_parent_is_refused(sandbox):
    (sandbox / "ro").mkdir()
    os.chmod(sandbox / "ro", 0o555)
    try:
        _refused(sandbox, ["f", "--format", "torch", "--out", "ro/new/step.pt2"], "is not writable")
    finally:
        os.chmod(sandbox / "ro", 0o755)


def test_c_directories_an_export_made_are_replaced_others_are_not(sandbox):
    r = runner.invoke(app, ["export", "q", "--format", "c", "--check", "0", "--out", "c1", "--name", "one"])
    assert r.exit_code == 0, r.output
    marker = json.loads((sandbox / "c1" / MARKER).read_text())
    assert marker["format"] == "rnnslim-c-int8" and "one.c" in marker["files"] and "model.json" in marker["files"]
    r = runner.invoke(app, ["export", "q", "--format", "c", "--check", "0", "--out", "c1", "--name", "two"])
    assert r.exit_code == 0 and (sandbox / "c1" / "two.c").exists() and not (sandbox / "c1" / "one.c").exists()
    _refused(sandbox, ["f", "--format", "onnx", "--force", "--out", "c1/model.json"], "inside an rnnslim C export")
    (sandbox / "c1" / "mine.txt").write_text("keep")  # a user's file in an export: never deleted
    _refused(sandbox, ["q", "--format", "c", "--check", "0", "--out", "c1"], "did not write (mine.txt)")
    (sandbox / "c1" / "mine.txt").unlink()
    (sandbox / "c1" / MARKER).unlink()  # model.json alone (an export's manifest, or a model's) is no marker
    _refused(sandbox, ["q", "--format", "c", "--check", "0", "--out", "c1"], f"no {MARKER}")
    (sandbox / "empty").mkdir()
    r = runner.invoke(app, ["export", "q", "--format", "c", "--check", "0", "--out", "empty"])
    assert r.exit_code == 0 and (sandbox / "empty" / MARKER).is_file()


def test_the_python_api_applies_the_same_rules(sandbox):
    q, f = load_model(sandbox / "q"), load_model(sandbox / "f")
    before = _tree(sandbox)
    for call in (lambda: export_model(q, "c", sandbox / "q", check_streams=0),
                 lambda: export_c(q, sandbox / "q"),
                 lambda: export_c_float(f, sandbox / "f"),
                 lambda: export_c_float(f, sandbox / "q"),
                 lambda: export_model(f, "onnx", sandbox / "f" / "model.json", force=True),
                 lambda: export_torch_program(f, sandbox / "notes.txt"),
                 lambda: export_torch_program(f, sandbox / "f" / "model.safetensors", force=True)):
        with pytest.raises(ExportDestinationError, match="refusing"):
            call()
    assert _tree(sandbox) == before
    facts = export_torch_program(f, sandbox / "notes.txt", force=True, check_steps=2)
    assert facts["bytes"] == (sandbox / "notes.txt").stat().st_size


def test_a_file_planted_under_a_temporary_name_is_never_written_through(sandbox):
    pytest.importorskip("onnxruntime")
    for planted in (".step.onnx.tmp", ".step.onnx.fp32.tmp"):
        (sandbox / planted).symlink_to(sandbox / "notes.txt")
    before = _tree(sandbox)
    r = runner.invoke(app, ["export", "f", "--format", "onnx-int8", "--out", "step.onnx"])
    assert r.exit_code == 0, r.output
    after = _tree(sandbox)
    assert {k: after[k] for k in before if not k.startswith("cache")} == {
        k: v for k, v in before.items() if not k.startswith("cache")}


def test_an_onnx_export_whatever_its_name_ends_in(sandbox):
    """onnx guesses a file's encoding from its name (.json: JSON text): the int8 check read its own
    file back as JSON and failed after the file was in place."""
    pytest.importorskip("onnxruntime")
    r = runner.invoke(app, ["export", "f", "--format", "onnx-int8", "--out", "step.json", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["int8_parity"]["steps"] == 100


def test_the_destination_is_checked_again_just_before_the_rename(tmp_path):
    tmp = tmp_path / "finished.tmp"
    tmp.write_bytes(b"export")
    check_destination(tmp_path / "step.pt2", "torch")  # free when the export starts...
    (tmp_path / "step.pt2").write_text("written meanwhile by someone else")  # ...taken before it ends
    with pytest.raises(ExportDestinationError, match="not written by an rnnslim export"):
        place_file(tmp, tmp_path / "step.pt2", "torch")
    assert (tmp_path / "step.pt2").read_text() == "written meanwhile by someone else"
