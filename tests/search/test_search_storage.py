"""The search journal (issue 19 section 6): a torn last record (kill -9 mid-write) is dropped
with a warning naming the file and offset instead of bricking the study; damage elsewhere
is an error naming the file; a path that is not a journal is refused with nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from search_helpers import make_model
from typer.testing import CliRunner

from rnnslim.cli import app
from rnnslim.search import journal
from rnnslim.search.journal import StaleLockWarning, StorageError, TornRecordWarning
from rnnslim.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _journal(path: Path, trials: int = 3) -> dict:
    """A study with `trials` finished trials in the journal at `path`; {number: value}."""
    study = optuna.create_study(storage=open_storage(str(path), path.parent), study_name="s")
    for i in range(trials):
        t = study.ask()
        t.suggest_float("x", 0, 1)
        study.tell(t, float(i))
    return {t.number: t.value for t in study.trials}


def _trials(path: Path) -> dict:
    study = optuna.load_study(study_name="s", storage=open_storage(str(path), path.parent))
    return {t.number: t.value for t in study.trials if t.state.is_finished()}


def test_every_truncation_of_the_last_record_is_dropped_with_a_warning_and_the_study_goes_on(tmp_path):
    src = tmp_path / "full.log"
    want = _journal(src)
    data = src.read_bytes()
    start = data.rindex(b"\n", 0, len(data) - 1) + 1  # the last record: data[start:]
    study_before_it = None
    for cut in range(start + 1, len(data)):  # every torn prefix of it, its newline alone included
        path = tmp_path / f"cut{cut}.log"
        path.write_bytes(data[:cut])
        with pytest.warns(TornRecordWarning, match=rf"{path}.*byte {start}\b"):
            got = _trials(path)
        assert path.read_bytes() == data[:start]  # the torn bytes are gone, the rest untouched
        study_before_it = study_before_it or got
        assert got == study_before_it and set(got) <= set(want)
        study = optuna.load_study(study_name="s", storage=open_storage(str(path), tmp_path))
        study.enqueue_trial({"x": 0.5})  # a new record lands on a clean line: the study is not bricked
        assert len(optuna.load_study(study_name="s", storage=open_storage(str(path), tmp_path)).trials) \
            == len(study.trials)


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import optuna
    from rnnslim.search.storage import open_storage
    study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1], Path(sys.argv[1]).parent))
    print("ready", flush=True)
    big = "x" * (48 << 20)  # one record of 48 MB: its write() takes long enough to be killed inside
    for i in range(1000):
        study.set_user_attr(f"big{i}", big)
""")


def _kill_mid_write(path: Path, attempts: int = 6) -> bool:
    """Run a worker appending big records to `path` and SIGKILL it once its write has begun;
    True when the kill left a torn record (the file does not end with a newline)."""
    for _ in range(attempts):
        base = path.stat().st_size
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while path.stat().st_size == base and time.monotonic() < deadline and proc.poll() is None:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if not path.read_bytes().endswith(b"\n"):
            return True
    return False


@pytest.mark.slow  # a worker process that writes 48 MB records, killed; the lock's grace time
def test_a_worker_killed_9_in_the_middle_of_a_write_leaves_a_study_that_reopens(tmp_path, monkeypatch):
    path = tmp_path / "journal.log"
    want = _journal(path)
    assert _kill_mid_write(path), "no kill landed inside a write in 6 tries"
    monkeypatch.setattr(journal, "LOCK_GRACE_S", 3)  # the killed worker held the journal lock
    with pytest.warns(StaleLockWarning), pytest.warns(TornRecordWarning, match=str(path)):
        got = _trials(path)
    assert got == want
    study = optuna.load_study(study_name="s", storage=open_storage(str(path), tmp_path))
    study.set_user_attr("after", 1)
    assert optuna.load_study(study_name="s", storage=open_storage(str(path), tmp_path)).user_attrs["after"] == 1


def test_a_damaged_record_in_the_middle_is_an_error_naming_the_file_and_nothing_is_changed(tmp_path):
    path = tmp_path / "journal.log"
    _journal(path)
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:2] + [lines[2][: len(lines[2]) // 2]] + lines[2:])  # a torn record, then more
    path.write_bytes(damaged)
    offset = len(lines[0]) + len(lines[1])
    with pytest.raises(StorageError, match=rf"{path} is damaged: the line at byte {offset}"):
        open_storage(str(path), tmp_path)
    assert path.read_bytes() == damaged and not Path(f"{path}.lock").exists()


def test_damage_written_while_the_study_is_open_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "journal.log"
    _journal(path)
    study = optuna.load_study(study_name="s", storage=open_storage(str(path), tmp_path))
    with open(path, "ab") as f:  # another program writes into the journal meanwhile
        f.write(b"not a record\n" + path.read_bytes().splitlines(keepends=True)[-1])
    with pytest.raises(StorageError, match=f"journal {path} is damaged"):
        study.get_trials()


def test_records_that_parse_but_do_not_replay_are_an_error_naming_the_file(tmp_path):
    path = tmp_path / "journal.log"
    _journal(path)
    edited = path.read_bytes() + b'{"op_code":0,"worker_id":"w","study_name":"t","directions":["up"]}\n'
    path.write_bytes(edited)
    with pytest.raises(StorageError, match=f"journal {path} cannot be replayed"):
        open_storage(str(path), tmp_path)
    assert path.read_bytes() == edited


def _fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("kind", ["text", "json", "binary", "one_line_no_newline", "brace", "json_op_code", "dir", "fifo",
                                  "symlink_to_text", "dangling_symlink", "lock_is_a_file"])
def test_a_path_that_is_not_a_journal_is_refused_and_nothing_is_written(tmp_path, kind):
    path = tmp_path / "notes.txt"
    content = {"text": b"my notes\nsecond line\n", "json": b'{"a": 1}\n', "binary": bytes(range(256)),
               "one_line_no_newline": b"x", "brace": b"{", "json_op_code": b'{"op_code":0}\n'}.get(kind, b"keep\n")
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        _fifo(path)
    elif kind.endswith("symlink_to_text") or kind == "dangling_symlink":
        (tmp_path / "real.txt").write_bytes(content)
        os.symlink(tmp_path / ("real.txt" if kind == "symlink_to_text" else "gone.txt"), path)
    elif kind == "lock_is_a_file":
        _journal(path)
        content = path.read_bytes()
        Path(f"{path}.lock").write_bytes(b"mine")
    else:
        path.write_bytes(content)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(StorageError, match=str(path)):
        open_storage(str(path), tmp_path)
    assert sorted(os.listdir(tmp_path)) == before
    if kind not in ("dir", "fifo", "dangling_symlink"):
        assert path.read_bytes() == content


def test_an_empty_file_is_a_journal_with_no_records(tmp_path):
    path = tmp_path / "new.log"  # what Optuna leaves before its first record (documented in journal.py)
    path.write_bytes(b"")
    optuna.create_study(storage=open_storage(str(path), tmp_path), study_name="s")
    assert path.read_bytes().startswith(journal.RECORD_START)


def test_a_dead_writers_lock_on_a_relative_path_is_broken_after_the_grace_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(journal, "LOCK_GRACE_S", 3)
    (tmp_path / "runs").mkdir()
    _journal(Path("runs/journal.log"))
    os.symlink("runs/journal.log", "runs/journal.log.lock")  # Optuna's lock, relative: dangles from runs/
    done = []

    def write():
        with pytest.warns(StaleLockWarning):
            study = optuna.load_study(study_name="s", storage=open_storage("runs/journal.log", Path("runs")))
            study.set_user_attr("after", 1)
        done.append(True)

    t = threading.Thread(target=write, daemon=True)  # Optuna's own lock spins forever here
    t.start()
    t.join(timeout=60)
    assert done, "the journal lock of a dead writer was never broken"


def test_cli_search_refuses_a_storage_that_is_not_a_journal_and_leaves_it_as_it_was(tmp_path):
    model, data = make_model(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    out = tmp_path / "search"
    r = CliRunner().invoke(app, ["search", str(model), "--data", str(data), "--out", str(out),
                                 "--storage", str(notes), "--budget", "bytes=1/2"])
    assert r.exit_code == 2, r.output
    last = [ln for ln in r.output.splitlines() if ln.strip()][-1]
    assert last.startswith(f"error: --storage {notes} is not an Optuna journal")
    assert notes.read_text() == "my notes\n" and not out.exists()
