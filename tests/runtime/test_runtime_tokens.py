"""ExportedModel.tokens: a language model export's text <-> ids from Python, through the C encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compilers import needs_cc

from rnnslim.export.c_source import export_c
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.runtime import ExportedModel
from rnnslim.tasks.charlm import CharLMTask


pytestmark = needs_cc
FAST = ("-O1",)  # compile time dominates these tests; the arithmetic is the same at any level
TEXT = "to be or not to be, that is the question.\n" * 20


def _int8_lm(task_meta: dict, V: int):
    torch.manual_seed(0)
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=V, embed_size=6,
                     layers=[LayerShape(hidden_size=8)], output_size=V)
    q = quantize_int8_(SequenceModel(spec).eval(), Int8Config(mode=Int8Mode.INTEGER),
                       calibration=[torch.randint(0, V, (12, 2))])
    q.task_meta = task_meta
    return q


def test_a_char_model_encodes_like_its_task_and_decodes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    task = CharLMTask(text=TEXT)
    q = _int8_lm(task.meta(), len(task.vocab))
    export_c(q, tmp_path / "c", name="chars")
    m = ExportedModel(tmp_path / "c", flags=FAST)
    ids = m.tokens.encode(TEXT[:200])
    assert ids.dtype == np.int32 and ids.tolist() == task.split("train")[:200].tolist()
    assert m.tokens.decode(ids) == TEXT[:200] and m.tokens.text(int(ids[0])) == "t"
    logits, _ = m.run(ids[:20])  # the ids drive the model as on the device
    assert logits.shape == (20, len(task.vocab)) and np.isfinite(logits).all()
    with pytest.raises(ValueError, match="character 3 of the text .'Z'. cannot be encoded"):
        m.tokens.encode("to Z")


def test_a_word_model_decodes_lines_and_maps_unknown_words_to_unk(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    vocab = ["<eos>", "<unk>", "the", "cat", "sat"]
    export_c(_int8_lm({"task": "wordlm", "vocab": vocab}, len(vocab)), tmp_path / "c", name="words")
    m = ExportedModel(tmp_path / "c", flags=FAST)
    ids = m.tokens.encode("the cat sat\nthe dog")
    assert ids.tolist() == [2, 3, 4, 0, 2, 1, 0]
    assert m.tokens.decode(ids) == "the cat sat\nthe <unk>\n" and len(m.tokens) == 5


def test_a_model_without_a_vocabulary_has_no_token_table(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    export_c(_int8_lm({"task": "charlm"}, 7), tmp_path / "c", name="ids")
    assert ExportedModel(tmp_path / "c", flags=FAST).tokens is None
