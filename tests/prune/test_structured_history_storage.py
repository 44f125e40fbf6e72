"""save_edited / load_edited keep the storage of a user's edited model: real bytes on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from user_models import HiddenAttrLM

from rnnslim.io.errors import ModelFormatError
from rnnslim.prune import StructuredPruning, prune_units_
from rnnslim.prune.masks import mark_sparse_
from rnnslim.prune.structured.history import load_edited, save_edited
from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_
from rnnslim.quantize.api import WeightOnly, quantize_


class TiedLM(nn.Module):
    def __init__(self, vocab=50, hidden=32):
        super().__init__()
        self.encoder = nn.Embedding(vocab, hidden)
        self.rnn = nn.GRU(hidden, hidden)
        self.decoder = nn.Linear(hidden, vocab)
        self.decoder.weight = self.encoder.weight

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


def _bytes(p: Path) -> int:
    return (p / "weights.safetensors").stat().st_size


def _same_outputs(a, b, x) -> bool:
    with torch.no_grad():
        return torch.equal(a(x)[0], b(x)[0])


def test_sparse_storage_is_kept(tmp_path):
    torch.manual_seed(0)
    m = HiddenAttrLM(hidden=64)
    x = torch.randint(0, 50, (6, 2))
    save_edited(m, tmp_path / "dense")
    res = prune_unstructured_(m, UnstructuredPruning(sparsity=0.8, targets=("input", "recurrent")))
    mark_sparse_(m, list(res.masks))
    save_edited(m, tmp_path / "sparse")
    assert _bytes(tmp_path / "sparse") < 0.6 * _bytes(tmp_path / "dense")
    back = load_edited(HiddenAttrLM(hidden=64), tmp_path / "sparse")
    assert _same_outputs(m, back, x) and back.tensor_encodings == m.tensor_encodings


def test_quantized_layers_are_rebuilt_and_packed(tmp_path):
    torch.manual_seed(0)
    m = HiddenAttrLM(hidden=64)
    x = torch.randint(0, 50, (6, 2))
    save_edited(m, tmp_path / "dense")
    quantize_(m, WeightOnly(bits=4, group_size=16))
    save_edited(m, tmp_path / "q")
    assert _bytes(tmp_path / "q") < 0.45 * _bytes(tmp_path / "dense")
    back = load_edited(HiddenAttrLM(hidden=64), tmp_path / "q")
    assert type(back.rnn).__name__ == type(m.rnn).__name__ != "LSTM"
    assert _same_outputs(m, back, x)


def test_structured_cut_then_quantized_and_tied_weights(tmp_path):
    torch.manual_seed(0)
    m = HiddenAttrLM(hidden=64)
    m.hidden = 32  # what init_hidden reads, updated with the cut
    x = torch.randint(0, 50, (6, 2))
    prune_units_(m, StructuredPruning(ratio=0.5), example_inputs=(x,))
    quantize_(m, WeightOnly(bits=8, group_size=None))
    save_edited(m, tmp_path / "e")
    fresh = HiddenAttrLM(hidden=64)
    fresh.hidden = 32
    back = load_edited(fresh, tmp_path / "e", example_inputs=(x,))
    assert _same_outputs(m, back, x)
    tied = TiedLM()
    save_edited(tied, tmp_path / "t")
    again = load_edited(TiedLM(), tmp_path / "t")
    assert again.decoder.weight is again.encoder.weight and _same_outputs(tied, again, x)


def test_damaged_or_mismatched_saves_are_refused(tmp_path):
    m = HiddenAttrLM()
    save_edited(m, tmp_path / "e")
    with pytest.raises(ModelFormatError, match="do not fit"):
        load_edited(HiddenAttrLM(hidden=48), tmp_path / "e")
    w = tmp_path / "e" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFormatError, match="checksum"):
        load_edited(HiddenAttrLM(), tmp_path / "e")
    with pytest.raises(ModelFormatError, match="not a directory save_edited wrote"):
        load_edited(HiddenAttrLM(), tmp_path)


def test_hash_cannot_be_switched_off_and_paths_stay_inside(tmp_path):
    import json

    m = HiddenAttrLM()
    save_edited(m, tmp_path / "e")
    manifest = tmp_path / "e" / "edited.json"
    meta = json.loads(manifest.read_text())
    for change, match in (({"weights_sha256": None}, "weights_sha256 is missing"),
                          ({"weights_file": "../e/weights.safetensors"}, "regular file")):
        manifest.write_text(json.dumps({**meta, **change}))
        with pytest.raises(ModelFormatError, match=match):
            load_edited(HiddenAttrLM(), tmp_path / "e")
