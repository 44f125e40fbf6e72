"""rnnslim.runtime loads only a library it compiled itself from sources the manifest hashes
(issue 19, section 4): planted libraries never run, a hostile manifest is refused with
ExportError, sizes come from the library (NAME_info), never from editable JSON."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compilers import needs_cc
from int8_models import integer_model

from rnnslim.export.c_source import export_c
from rnnslim.runtime import ExportedModel, ExportError, verify_export


@pytest.fixture
def export(tmp_path, monkeypatch) -> Path:
    """A small LSTM export named "m" (vocabulary 30), with a private cache."""
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    export_c(integer_model("lstm", hidden=(24,)), tmp_path / "c", name="m")
    return tmp_path / "c"


def _planted_library(path: Path, marker: Path) -> Path:
    """A shared library whose constructor writes `marker` (the proof that it was loaded), with
    the symbols of export "m" so a loader that accepts it would also find what it looks for."""
    src = path.with_suffix(".c")
    src.write_text(f"""#include <stdio.h>
__attribute__((constructor)) static void planted(void) {{
    FILE *f = fopen("{marker}", "w");
    if (f) {{ fputs("planted code ran", f); fclose(f); }}
}}
int m_init(void) {{ return 0; }}
""")
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", "-o", str(path), str(src)], check=True)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def _edit_manifest(export: Path, **changes) -> None:
    meta = json.loads((export / "model.json").read_text())
    for k, v in changes.items():
        if v is ...:
            meta.pop(k, None)
        else:
            meta[k] = v
    (export / "model.json").write_text(json.dumps(meta))


@needs_cc
def test_a_planted_library_with_its_digest_never_runs(export, tmp_path):
    marker = tmp_path / "marker"
    _planted_library(export / "libm.so", marker)
    m = ExportedModel(export)
    assert not marker.exists() and m.library.parent == tmp_path / "cache" / "kernels"
    assert m.step(3, m.new_state()).shape == (m.outputs,)


@needs_cc
def test_a_planted_library_behind_a_symlink_never_runs(export, tmp_path):
    marker = tmp_path / "marker"
    target = _planted_library(tmp_path / "elsewhere.so", marker)
    (export / "libm.so").symlink_to(target)
    (export / "libm.so.sha256").symlink_to(target.with_name(target.name + ".sha256"))
    ExportedModel(export)
    assert not marker.exists()


@needs_cc
def test_a_name_that_walks_out_of_the_export_is_refused(export, tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "elsewhere").mkdir()
    _planted_library(tmp_path / "elsewhere" / "libx.so", marker)
    (export / "lib").mkdir()  # so that c/lib/../../elsewhere resolves
    _edit_manifest(export, name="/../../elsewhere/libx", files={})
    with pytest.raises(ExportError, match="name"):
        ExportedModel(export)
    assert not marker.exists()


@needs_cc
@pytest.mark.parametrize("files", [{}, ...], ids=["empty", "missing"])
def test_a_manifest_without_file_hashes_is_refused(export, tmp_path, files):
    marker = tmp_path / "marker"
    src = export / "m.c"  # an edit that would run code at load time
    src.write_text(src.read_text() + f'\n#include <stdio.h>\n__attribute__((constructor)) static void p(void) '
                   f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    _edit_manifest(export, files=files)
    with pytest.raises(ExportError, match="files"):
        ExportedModel(export)
    with pytest.raises(ExportError, match="files"):
        verify_export(export)
    assert not marker.exists()


@needs_cc
@pytest.mark.parametrize("field, value", [("outputs", 100000), ("state_len", 1), ("state_len", 5000),
                                          ("features", 13), ("state_bytes", 2), ("cell", "gru"),
                                          ("layers", [24, 24])])
def test_edited_sizes_in_the_manifest_are_refused_not_a_crash(export, field, value):
    """Before: double free or corruption (exit 134) or SIGSEGV; run in a child so a crash shows as one."""
    meta = json.loads((export / "model.json").read_text())
    consistent = {}  # the other fields edited alike, so that the schema's own checks do not catch it
    if field == "features":
        consistent = {"input_kind": "linear"}
    if field == "state_bytes":
        consistent = {"ram_bytes": meta["scratch_bytes"] + value}
    _edit_manifest(export, **{field: value}, **consistent)
    code = ("import sys, numpy as np\nfrom rnnslim.runtime import ExportedModel, ExportError\n"
            "try:\n    m = ExportedModel(sys.argv[1])\n    s = m.new_state()\n"
            "    for t in range(5): m.step(t, s)\n    print('loaded')\n"
            "except ExportError as e:\n    print('ExportError', e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(export)], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"ExportError {export}/model.json says {field}"), proc.stdout


@needs_cc
@pytest.mark.parametrize("value", [1e12, True, "5", -1, 2**40, None, [30]])
def test_malformed_manifest_numbers_are_an_export_error(export, value):
    _edit_manifest(export, outputs=value)
    with pytest.raises(ExportError, match="outputs"):
        ExportedModel(export)


@needs_cc
@pytest.mark.parametrize("content", [b"\xff\xfe{", b"[1, 2]", b'{"format": "rnnslim-c-int8", "format": 1}',
                                     b"{" * 100000, b'{"format": "rnnslim-c-int8", "outputs": NaN}'])
def test_unreadable_manifests_are_an_export_error(export, content):
    (export / "model.json").write_bytes(content)
    with pytest.raises(ExportError):
        ExportedModel(export)


@needs_cc
def test_a_symlinked_source_is_refused(export, tmp_path):
    copy = tmp_path / "m_copy.c"
    shutil.copy(export / "m.c", copy)  # the same bytes, so only the link itself is wrong
    (export / "m.c").unlink()
    (export / "m.c").symlink_to(copy)
    with pytest.raises(ExportError, match="m.c"):
        ExportedModel(export)


@needs_cc
def test_an_edited_header_is_refused(export):
    h = export / "rnnslim_core.h"
    h.write_bytes(h.read_bytes() + b"\n/* edited */\n")
    with pytest.raises(ExportError, match="rnnslim_core.h does not match"):
        ExportedModel(export)


@needs_cc
def test_a_source_that_does_not_compile_is_an_export_error(export):
    src = export / "m.c"
    src.write_text(src.read_text() + "\nthis is not C;\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    meta = json.loads((export / "model.json").read_text())
    _edit_manifest(export, files=meta["files"] | {"m.c": digest})
    with pytest.raises(ExportError, match="does not compile") as e:
        ExportedModel(export)
    assert "\n" not in str(e.value) and f"{export}/m.c" in str(e.value)  # one line, the export's file


def test_a_manifest_made_before_NAME_info_is_refused(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format": "rnnslim-c-int8", "format_version": 1}))
    with pytest.raises(ExportError):
        verify_export(tmp_path)


@needs_cc
def test_sizes_come_from_the_library(export):
    m = ExportedModel(export)
    meta = json.loads((export / "model.json").read_text())
    assert (m.outputs, m.state_len, m.vocab) == (meta["outputs"], meta["state_len"], meta["vocab"])
    assert m.new_state().nbytes == meta["state_bytes"]
    assert np.isfinite(m.step(1, m.new_state())).all()


@needs_cc
@pytest.mark.parametrize("target", ["model.json", "m.c"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "dev_zero"])
def test_a_listed_file_that_is_not_a_plain_file_is_an_export_error(export, target, kind):
    p = export / target
    p.unlink()
    {"directory": p.mkdir, "fifo": lambda: os.mkfifo(p), "dev_zero": lambda: p.symlink_to("/dev/zero")}[kind]()
    with pytest.raises(ExportError, match=target):
        ExportedModel(export)


@needs_cc
def test_a_delta_export_gets_a_state_as_large_as_its_struct(tmp_path, monkeypatch):
    """A delta model's NAME_state holds a delta state after the int16 words: the buffer is sized
    by NAME_info (before: state_len int16 words from the manifest, written past by the C)."""
    import copy

    import torch
    from int8_models import delta_model as _model

    from rnnslim.quantize.int8 import IntegerRunner
    from rnnslim.quantize.int8.delta import set_delta_threshold_

    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    q = set_delta_threshold_(copy.deepcopy(_model("lstm", hidden=(40, 24))), {0: 3, 1: 6})
    facts = export_c(q, tmp_path / "c", name="dm")
    m = ExportedModel(tmp_path / "c")
    assert m.new_state().nbytes == facts.state_bytes > 2 * facts.state_len
    x = torch.randint(0, 30, (50,), generator=torch.Generator().manual_seed(5))
    logits, state = m.run(x.numpy())
    ref, ref_state = IntegerRunner(q, "portable").run(x)
    assert np.array_equal(logits, ref.numpy()) and np.array_equal(state[: m.state_len], ref_state.buf.numpy())
    assert np.array_equal(m.run_sequence(x.numpy()), logits)


def test_manifest_facts_must_agree_with_each_other(export):
    meta = json.loads((export / "model.json").read_text())
    _edit_manifest(export, ram_bytes=meta["ram_bytes"] + 1)
    with pytest.raises(ExportError, match="ram_bytes"):
        verify_export(export)
