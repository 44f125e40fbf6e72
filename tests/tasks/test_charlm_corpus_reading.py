"""charlm corpora are read with bounded memory (issue 19 §7): in pieces, the same ids as reading
the whole text; a file past the documented limit is refused from its size before reading."""

from __future__ import annotations

import os

import pytest
import torch

from rnnslim.tasks import corpus
from rnnslim.tasks.charlm import CharLMTask


def _whole_file_ids(path, vocab=None):
    """What the task used to do: read, decode and translate the whole file at once."""
    text = path.read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    vocab = vocab or sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return vocab, torch.tensor([index[c] for c in text], dtype=torch.long)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_pieces_give_the_ids_of_the_whole_text(tmp_path, monkeypatch, chunk):
    # CRLF pairs, lone CRs and multi-byte characters fall across piece boundaries for small chunks
    text = ("héllo wörld\r\nsecond line\rthird 😀 line\r\n" * 6 + "end\r").encode("utf-8")
    (tmp_path / "t.txt").write_bytes(text)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", chunk)
    task = CharLMTask(tmp_path / "t.txt")
    vocab, ids = _whole_file_ids(tmp_path / "t.txt")
    assert task.vocab == vocab and torch.equal(task.ids, ids)
    assert "\r" not in task.vocab
    short = CharLMTask(tmp_path / "t.txt", max_chars=150)
    assert torch.equal(short.ids, ids[:150])


def test_a_file_past_the_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(3 << 30)  # a sparse 3 GiB file: no disk used, and never read
    with pytest.raises(ValueError, match=r"big.txt: the text file is 3,221,225,472 bytes, more than the "
                                         r"536,870,912 .*max_chars.*RNNSLIM_MAX_CORPUS_BYTES"):
        CharLMTask(big)


def test_the_limit_is_configurable_and_max_chars_reads_only_the_start(tmp_path, monkeypatch):
    f = tmp_path / "t.txt"
    f.write_text("abcdefghij" * 200)  # 2,000 bytes
    monkeypatch.setenv(corpus.LIMIT_ENV, "1000")
    with pytest.raises(ValueError, match="2,000 bytes, more than the 1,000"):
        CharLMTask(f)
    assert len(CharLMTask(f, max_chars=500).ids) == 500
    monkeypatch.setenv(corpus.LIMIT_ENV, "2000")
    assert len(CharLMTask(f).ids) == 2000
    monkeypatch.setenv(corpus.LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="RNNSLIM_MAX_CORPUS_BYTES='lots' is not a whole number"):
        CharLMTask(f)


def test_eval_refuses_a_huge_corpus_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from rnnslim.cli import app
    from rnnslim.io.format import save_model
    from rnnslim.models.sequence import SequenceModel

    task = CharLMTask(text="abcdefghij" * 20)
    model = SequenceModel(task.model_spec(hidden_size=4, num_layers=1))
    model.task_meta = task.meta()
    save_model(model, tmp_path / "m")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(3 << 30)
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "m"), "--data", str(big)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")][0].count("more than the") == 1
    assert os.stat(big).st_blocks == 0  # still sparse: nothing was written to it


@pytest.mark.parametrize("entry", ["", "ab", "x" * 100_000])
def test_a_given_char_vocabulary_must_be_single_characters(entry):
    with pytest.raises(ValueError, match="the vocabulary entry 2 is"):
        CharLMTask(text="abc" * 50, vocab=["a", "b", entry, "c"])
