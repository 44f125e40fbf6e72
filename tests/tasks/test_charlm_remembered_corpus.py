"""A model remembers the corpus it was trained on: later runs need no --data (unless it moved or changed)."""

from __future__ import annotations

import pytest

from rnnslim.tasks import make_task
from rnnslim.tasks.charlm import CharLMTask


def test_corpus_is_remembered_and_checked(tmp_path, monkeypatch):
    corpus = tmp_path / "my.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    meta = CharLMTask(corpus).meta()
    assert meta["corpus"] == str(corpus.resolve()) and len(meta["corpus_sha256"]) == 64
    monkeypatch.chdir(tmp_path.parent)
    again = make_task("charlm", None, meta)  # no --data: the remembered file
    assert again.source == str(corpus.resolve()) and again.vocab == meta["vocab"]
    corpus.write_text("the quick brown fox jumps over the lazy dog! " * 20)
    with pytest.raises(ValueError, match="changed since the model was trained"):
        make_task("charlm", None, meta)
    corpus.unlink()
    with pytest.raises(FileNotFoundError, match="not there any more; give the corpus with --data"):
        make_task("charlm", None, meta)
    assert make_task("charlm", None, {"task": "charlm", "corpus": "python-stdlib"}).source == "python-stdlib"
