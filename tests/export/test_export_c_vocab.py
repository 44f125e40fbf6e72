"""The token table of a C export (c_vocab.py): NAME_encode turns text into exactly the ids the
model's task gives (the training tokenization, read from a file as training reads it), the
table maps ids back to text, and the files build with the firmware warning flags."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnslim.export.c_source import export_c
from rnnslim.export.c_vocab import c_string
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.runtime import read_manifest
from rnnslim.runtime.build import CompilerUnavailable, compile_shared, find_compiler
from rnnslim.tasks.corpus import Newlines, file_pieces
from rnnslim.tasks.wordlm import iter_tokens


def _cc() -> str | None:
    try:
        return find_compiler()
    except CompilerUnavailable:
        return None


needs_cc = pytest.mark.skipif(_cc() is None, reason="no C compiler here")
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow", "-Wundef",
            "-Wdouble-promotion", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual", "-Wvla")
CHARS = ["\n", " ", "a", "b", "é", "?", "\\", '"', "\0", "日", "🙂", "\t"]
WORDS = ["<eos>", "<unk>", "the", "cat", "café", "??=", 'say"', "日本", "a\\b"]


def _int8_lm(task: str, vocab: list[str]):
    torch.manual_seed(0)
    V = len(vocab)
    spec = ModelSpec(cell="gru", input_kind=InputKind.EMBEDDING, input_size=V, embed_size=6,
                     layers=[LayerShape(hidden_size=8)], output_size=V)
    q = quantize_int8_(SequenceModel(spec).eval(), Int8Config(mode=Int8Mode.INTEGER),
                       calibration=[torch.randint(0, V, (12, 2))])
    q.task_meta = {"task": task, "vocab": vocab}
    return q


class _Encoder:
    """NAME_vocab.c compiled with the firmware warnings as errors, called through ctypes."""

    def __init__(self, d: Path, name: str) -> None:
        lib = ctypes.CDLL(str(compile_shared([d / f"{name}_vocab.c"], ("-O2", *WARNINGS[1:]), f"vocab_{name}",
                                             depends=[d / f"{name}_vocab.h"], out_dir=d / "lib")))
        self.encode_fn = getattr(lib, f"{name}_encode")
        self.encode_fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int32]
        self.encode_fn.restype = ctypes.c_int32
        self.text_fn = getattr(lib, f"{name}_token_text")
        self.text_fn.argtypes, self.text_fn.restype = [ctypes.c_int32], ctypes.c_void_p
        self.length_fn = getattr(lib, f"{name}_token_length")
        self.length_fn.argtypes, self.length_fn.restype = [ctypes.c_int32], ctypes.c_size_t
        self.id_fn = getattr(lib, f"{name}_token_id")
        self.id_fn.argtypes, self.id_fn.restype = [ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int32

    def encode(self, data: bytes, max_ids: int = 4096) -> list[int] | int:
        ids = np.full(max_ids, -7, np.int32)
        n = self.encode_fn(data, len(data), ids.ctypes.data, max_ids)
        return n if n < 0 else ids[:n].tolist()

    def text(self, i: int) -> bytes | None:
        ptr = self.text_fn(i)
        return None if ptr is None else ctypes.string_at(ptr, self.length_fn(i))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocab")
    export_c(_int8_lm("charlm", CHARS), d / "chars", name="chars")
    export_c(_int8_lm("wordlm", WORDS), d / "words", name="words")
    return d


def _python_chars(path: Path) -> list[int] | None:
    index = {c: i for i, c in enumerate(CHARS)}
    try:
        text = "".join(file_pieces(path, Newlines()))
    except UnicodeDecodeError:
        return None
    return [index[c] for c in text] if all(c in index for c in text) else None


def _python_words(path: Path) -> list[int] | None:
    index = {w: i for i, w in enumerate(WORDS)}
    try:
        return [index.get(w, 1) for w in iter_tokens(path)]
    except UnicodeDecodeError:
        return None


SAMPLES = [b"", b"ab a\n", b"a\r\nb\rb", "é日🙂\t\"\\?\0".encode(), b"a\xc3", b"a\xed\xa0\x80", b"\xc0\xaf",
           b"\xf4\x90\x80\x80", b"ab c", "the cat café\n\n??= say\" 日本 a\\b dog".encode(), b"the\r\ncat\rthe",
           "the\u00a0cat\u2028the\x1ccat\x0bthe\x85 \n ".encode(), b"cat\n", b" \n", b"\n", b"the"]


@needs_cc
@pytest.mark.parametrize("data", SAMPLES)
def test_encode_gives_the_ids_training_gives(exports, tmp_path, data):
    f = tmp_path / "t.txt"
    f.write_bytes(data)
    for kind, ref in (("chars", _python_chars(f)), ("words", _python_words(f))):
        got = _Encoder(exports / kind, kind).encode(data)
        if ref is None:  # Python refuses the text (bad UTF-8, a character outside): C says where
            assert isinstance(got, int) and got < 0 and -1 - got < max(len(data), 1), (kind, data, got)
        else:
            assert got == ref, (kind, data)


@needs_cc
def test_encode_errors_name_the_byte_and_a_small_buffer_gets_the_count(exports):
    chars = _Encoder(exports / "chars", "chars")
    assert chars.encode(b"abz") == -1 - 2  # byte 2: 'z' is outside the vocabulary
    assert chars.encode("ab\xe9".encode("latin-1")) == -1 - 2  # byte 2: invalid UTF-8
    ids = np.full(3, -7, np.int32)
    assert chars.encode_fn(b"ababa", 5, ids.ctypes.data, 2) == 5 and ids.tolist() == [2, 3, -7]
    words = _Encoder(exports / "words", "words")
    assert words.encode(b"the dog") == [2, 1, 0]  # dog -> <unk>, then <eos> at the end of the line


@needs_cc
def test_ids_map_back_to_their_text(exports):
    for kind, vocab in (("chars", CHARS), ("words", WORDS)):
        enc = _Encoder(exports / kind, kind)
        assert [enc.text(i) for i in range(len(vocab))] == [t.encode() for t in vocab]
        assert enc.text(-1) is None and enc.text(len(vocab)) is None and enc.length_fn(len(vocab)) == 0
        assert [enc.id_fn(t.encode(), len(t.encode())) for t in vocab] == list(range(len(vocab)))
        assert enc.id_fn(b"zz", 2) == -1 and enc.id_fn(b"", 0) == -1


def test_vocab_json_and_manifest_document_the_mapping(exports):
    for kind, vocab, tokenizer in (("chars", CHARS, "chars"), ("words", WORDS, "words")):
        doc = json.loads((exports / kind / "vocab.json").read_text())
        assert doc["tokens"] == vocab and doc["tokenizer"] == tokenizer and doc["format"] == "rnnslim-vocab"
        meta = read_manifest(exports / kind)
        assert meta["tokenizer"] == tokenizer and meta["vocab_table_bytes"] > sum(len(t.encode()) for t in vocab)
        assert {f"{kind}_vocab.c", f"{kind}_vocab.h", "vocab.json"} <= set(meta["files"])
    words = json.loads((exports / "words" / "vocab.json").read_text())
    assert (words["eos"], words["unk"]) == (0, 1) and 0xA0 in words["whitespace"] and 0x0A not in words["whitespace"]
    assert json.loads((exports / "chars" / "vocab.json").read_text())["lf_for_cr"] is True


def test_c_strings_are_exact_and_never_form_trigraphs():
    assert c_string("??=".encode()) == '"\\077\\077="'
    assert c_string("é1".encode()) == '"\\303\\2511"'  # octal escapes stop after 3 digits: the 1 stays a 1


def test_models_without_a_known_vocabulary_export_ids_only(tmp_path):
    q = _int8_lm("charlm", CHARS)
    q.task_meta = {"task": "charlm"}  # no vocabulary recorded
    facts = export_c(q, tmp_path / "c", name="ids")
    assert facts.tokenizer is None and not (tmp_path / "c" / "vocab.json").exists()
    assert "Tokens: ids only" in (tmp_path / "c" / "ids.h").read_text()
    q.task_meta = {"task": "charlm", "vocab": CHARS[:-1]}
    with pytest.raises(ValueError, match="11 entries but the model reads 12 token ids"):
        export_c(q, tmp_path / "c2", name="ids")


@needs_cc
def test_the_header_states_flash_and_ram_and_the_vocab_files_build_with_the_firmware_flags(exports):
    d = exports / "words"
    meta = read_manifest(d)
    header = " ".join((d / "words.h").read_text().replace("\n * ", " ").split())  # the comment as one line
    assert (f"flash {meta['const_bytes']:,} bytes" in header and f"RAM {meta['scratch_bytes']:,} bytes" in header
            and f"+ {meta['state_bytes']:,} bytes per stream" in header)
    (d / "use.c").write_text('#include <string.h>\n#include "words.h"\n#include "words_vocab.h"\n'
                             "int main(void) {\n    int32_t ids[8];\n    float logits[WORDS_OUTPUTS];\n"
                             "    words_state s;\n    int32_t n = words_encode(\"the cat\", 7, ids, 8), i;\n"
                             "    words_init();\n    words_reset(&s);\n"
                             "    for (i = 0; i < n; i++) words_step(&s, ids[i], logits);\n"
                             "    return words_token_text(ids[0])[0] == 't' && n == 3 ? 0 : 1;\n}\n")
    exe = d / "use.exe"
    proc = subprocess.run([_cc(), *WARNINGS, "-O2", "-I", str(d), str(d / "words.c"), str(d / "words_vocab.c"),
                           str(d / "use.c"), "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert subprocess.run([str(exe)]).returncode == 0
    exe.unlink()
    (d / "use.c").unlink()


def test_the_cli_exports_a_saved_language_model_under_its_run_name_with_its_vocabulary(tmp_path):
    from typer.testing import CliRunner

    from rnnslim.cli import app
    from rnnslim.io.format import save_model

    save_model(_int8_lm("charlm", CHARS), tmp_path / "runs" / "lm-small" / "model")
    r = CliRunner().invoke(app, ["export", str(tmp_path / "runs" / "lm-small"), "--out", str(tmp_path / "c"),
                                 "--check", "0"])
    assert r.exit_code == 0, r.output
    assert "+ lm_small_vocab.{c,h} (lm_small_encode: text -> ids" in r.output
    assert {"lm_small.c", "lm_small.h", "lm_small_vocab.c", "lm_small_vocab.h", "vocab.json"} <= {
        p.name for p in (tmp_path / "c").iterdir()}


def test_the_float_export_carries_the_same_token_table(tmp_path):
    from rnnslim.export.c_float import export_c_float

    model = SequenceModel(ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=len(WORDS), embed_size=4,
                                    layers=[LayerShape(hidden_size=6)], output_size=len(WORDS))).eval()
    model.task_meta = {"task": "wordlm", "vocab": WORDS}
    facts = export_c_float(model, tmp_path / "f", name="ref")
    assert facts.tokenizer == "words" and json.loads((tmp_path / "f" / "vocab.json").read_text())["tokens"] == WORDS
    assert "ref_encode" in (tmp_path / "f" / "ref_vocab.h").read_text()
