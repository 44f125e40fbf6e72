"""utils/progress.py: bars only on a terminal and when enabled; nested bars share one display;
`--json` output stays pure JSON even when stderr is a terminal."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rnnslim.utils import progress as pg


@pytest.fixture
def terminal(monkeypatch):
    """Pretend stderr is a terminal; record every real bar made (description, transient)."""
    made = []

    class Recording(pg._RichBar):
        def __init__(self, total, initial, desc, transient):
            made.append((desc, transient))
            super().__init__(total, initial, desc, transient)

    monkeypatch.setattr(pg, "_is_terminal", lambda: True)
    monkeypatch.setattr(pg, "_RichBar", Recording)
    monkeypatch.delenv("RNNSLIM_PROGRESS", raising=False)
    return made


def test_no_bar_unless_a_terminal_and_enabled(monkeypatch, terminal):
    assert isinstance(pg.progress_bar(3, desc="x", enabled=False), pg._Null)
    with pg.progress_scope(False):
        with pg.progress_scope(True):  # an inner True does not switch bars back on
            assert isinstance(pg.progress_bar(3), pg._Null) and not pg.progress_allowed()
    monkeypatch.setenv("RNNSLIM_PROGRESS", "0")
    assert isinstance(pg.progress_bar(3), pg._Null)
    monkeypatch.setattr(pg, "_is_terminal", lambda: False)
    monkeypatch.delenv("RNNSLIM_PROGRESS")
    assert isinstance(pg.progress_bar(3), pg._Null) and terminal == []


def test_nested_bars_share_one_display_and_the_outer_line_stays(terminal, capsys):
    outer = pg.progress_bar(4, desc="train")
    live = pg._Live.progress
    seen = []
    for x in pg.track([1, 2, 3], desc="evaluate valid"):
        seen.append(x)
        assert pg._Live.progress is live and pg._Live.open_bars == 2
    assert pg._Live.open_bars == 1 and len(live.tasks) == 1  # the transient bar is gone
    for _ in range(4):
        outer.update(1, loss=0.5, lr=1e-3)
    outer.close()
    outer.close()  # twice is harmless
    assert seen == [1, 2, 3] and pg._Live.progress is None and pg._Live.open_bars == 0
    assert terminal == [("train", False), ("evaluate valid", True)]
    err = capsys.readouterr()
    assert "train" in err.err and "4/4" in err.err and "loss=0.5" in err.err and err.out == ""


def test_json_output_has_no_progress_even_on_a_terminal(tmp_path, terminal):
    from rnnslim.cli import app

    text = tmp_path / "t.txt"
    text.write_text("abcdefg hijklmnop qrstuv wxyz. " * 200)
    args = ["train", "--data", str(text), "--hidden", "8", "--layers", "1", "--max-steps", "3", "--batch-size", "4",
            "--seq-len", "16"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 3 and r.stdout.count("\n") == 1  # exactly one JSON object
    assert terminal == []
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert ("train", False) in terminal and ("evaluate valid", True) in terminal
    assert r.stdout.startswith("trained 3 steps") and "eta" not in r.stdout  # bars went to stderr
