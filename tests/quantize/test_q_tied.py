"""A tied embedding / decoder quantized with quantize_ (int4 / int8 weight-only, int8 dynamic)
is stored once (issue 25): the tied artifact is smaller than the untied one by about the
embedding's quantized bytes, and it round-trips exactly with the tie kept."""

from __future__ import annotations

import pytest
import torch

from rnnslim.io.format import ModelFormatError, load_model, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.quantize.api import WeightOnly, quantize_
from rnnslim.quantize.int8 import Int8Config, Int8Mode
from rnnslim.tasks.charlm import CharLMTask

TASK = CharLMTask(text="".join(chr(33 + (i * 7) % 90) for i in range(4000)))
CONFIGS = {"int4": WeightOnly(bits=4), "int8-weight-only": WeightOnly(bits=8, group_size=None),
           "int8-dynamic": Int8Config(mode=Int8Mode.DYNAMIC)}


def _quantized(tie: bool, cfg) -> SequenceModel:
    torch.manual_seed(0)
    m = SequenceModel(TASK.model_spec(hidden_size=64, num_layers=1, tie_weights=tie))
    m.task_meta = TASK.meta()
    return quantize_(m, cfg)


def _bytes(path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def _embedding_bytes(model) -> int:
    return sum(b.numel() * b.element_size() for b in model.embedding.buffers())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tied_quantized_model_is_stored_once_and_round_trips(tmp_path, name):
    tied, untied = _quantized(True, CONFIGS[name]), _quantized(False, CONFIGS[name])
    save_model(tied, tmp_path / "tied")
    save_model(untied, tmp_path / "untied")
    saved = _bytes(tmp_path / "untied") - _bytes(tmp_path / "tied")
    emb = _embedding_bytes(tied)
    assert 0.9 * emb <= saved <= 1.1 * emb + 512, (saved, emb)  # the decoder's copy (+ its manifest lines)
    back = load_model(tmp_path / "tied")
    x = torch.randint(0, len(TASK.vocab), (7, 3))
    assert torch.equal(tied(x)[0], back(x)[0])
    emb_bufs = {id(b) for b in back.embedding.buffers()}
    assert all(id(b) in emb_bufs for n, b in back.decoder.named_buffers() if n.split(".")[-1] != "bias")


def test_differing_codes_are_not_tied(tmp_path):
    m = _quantized(True, WeightOnly(bits=8, group_size=None))
    assert {id(b) for b in m.decoder.buffers()} <= {id(b) for b in m.embedding.buffers()}
    m2 = _quantized(True, WeightOnly(bits=8, group_size=None))
    with torch.no_grad():  # a decoder whose codes are its own (e.g. fine-tuned apart): stored as its own
        for n, b in list(m2.decoder.named_buffers()):
            owner = m2.decoder.get_submodule(n.rpartition(".")[0]) if "." in n else m2.decoder
            owner._buffers[n.rpartition(".")[2]] = b.clone()
        next(iter(m2.decoder.buffers())).flatten()[0] += 1
    save_model(m2, tmp_path / "own")
    back = load_model(tmp_path / "own")
    x = torch.randint(0, len(TASK.vocab), (5, 2))
    assert torch.equal(m2(x)[0], back(x)[0])


def test_a_missing_decoder_tensor_that_cannot_be_shared_is_an_error(tmp_path):
    m = _quantized(True, Int8Config(mode=Int8Mode.DYNAMIC))
    save_model(m, tmp_path / "m")
    import json

    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["spec"]["tie_weights"] = False
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError):
        load_model(tmp_path / "m")
