"""`export --format c` renames the export into place only after its bit-exact check passed
(issue 19, section 4): a failed check, an error or a kill -9 during the check leaves nothing
new at `out` (and an earlier export there untouched)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from compilers import needs_cc
from int8_models import integer_model

from rnnslim.export import c_check
from rnnslim.export.formats import export_model
from rnnslim.runtime import ExportError, verify_export

TESTS = Path(__file__).resolve().parents[1]


@needs_cc
def test_the_check_runs_before_the_export_is_at_out(tmp_path, monkeypatch):
    out, seen = tmp_path / "c", []
    real = c_check.check_on_host

    def spy(runner, export_dir, *a, **k):
        seen.append((Path(export_dir) != out, out.exists()))
        return real(runner, export_dir, *a, **k)

    monkeypatch.setattr(c_check, "check_on_host", spy)
    facts = export_model(integer_model("gru", hidden=(16,)), "c", out, name="m", check_streams=3)
    assert seen == [(True, False)]  # checked elsewhere while `out` did not exist yet
    assert facts["out"] == str(out) and str(out) in facts["check"]["command"]
    assert verify_export(out)["name"] == "m" and not (out / "check_main.c").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no staging folder left behind


@needs_cc
@pytest.mark.parametrize("how", ["mismatch", "error"])
def test_a_failed_check_leaves_the_earlier_export_untouched(tmp_path, monkeypatch, how):
    out = tmp_path / "c"
    export_model(integer_model("lstm", hidden=(16,)), "c", out, name="old", check_streams=2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing(runner, export_dir, streams, **k):
        if how == "error":
            raise KeyboardInterrupt  # what an interrupted check raises
        return c_check.CheckResult(len(streams), streams.shape[1], [0], None, ["cc"])

    monkeypatch.setattr(c_check, "check_on_host", failing)
    with pytest.raises(RuntimeError if how == "mismatch" else KeyboardInterrupt):
        export_model(integer_model("lstm", hidden=(16,)), "c", out, name="new", check_streams=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


@needs_cc
def test_a_kill_during_the_check_leaves_nothing_at_out(tmp_path):
    """kill -9 in the middle of the check (before: an unchecked export that verify_export accepted)."""
    out = tmp_path / "c"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = [{str(TESTS)!r}]
        from int8_models import integer_model
        from rnnslim.export import c_check
        from rnnslim.export.formats import export_model
        c_check.check_on_host = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        export_model(integer_model("gru", hidden=(16,)), "c", {str(out)!r}, name="m", check_streams=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy())
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not out.exists()
    with pytest.raises(ExportError):
        verify_export(out)
