"""The dct and block_circulant encodings: real bytes on disk, exact reload, clear errors on
corrupt or mismatched files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transform_models import tiny_model

from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.transform import BlockCirculant, DCTSparsity, block_circulant_, dct_sparsify_

W = "rnn.layers.0.weight_hh_l0"  # (4 * 24, 24) in the LSTM, (3 * 24, 24) in the GRU


def _parts(d, name=W) -> dict[str, torch.Tensor]:
    return {k.partition("::")[2]: v for k, v in load_file(str(d / "model.safetensors")).items()
            if k.partition("::")[0] == name}


def _same_after_reload(m, d):
    save_model(m, d)
    m2 = load_model(d)
    for (n, p), (_, q) in zip(m.named_parameters(), m2.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), n
    assert m2.tensor_encodings == m.tensor_encodings
    return m2


@pytest.mark.parametrize("cell,bits,block,scale", [("lstm", 32, None, "row"), ("gru", 8, None, "row"),
                                                   ("lstm", 16, (8, 8), "tensor"), ("gru", 8, (5, 7), "tensor")])
def test_saved_coefficients_are_what_is_kept_and_reload_equals_memory(cell, tmp_path, bits, block, scale):
    m = tiny_model(cell)
    res = dct_sparsify_(m, DCTSparsity(keep=0.2, bits=bits, block=block, scale=scale))
    _same_after_reload(m, tmp_path / "m")
    rec = json.loads((tmp_path / "m" / "model.json").read_text())["tensors"][W]
    parts, keep = _parts(tmp_path / "m"), res.report["tensors"][W]["keep"]
    rows, cols = res.report["tensors"][W]["shape"]
    assert rec["encoding"] == "dct" and rec["options"]["keep"] == keep
    values = parts["values"]  # 20 % kept: bitmap storage (numel / 8 bytes + the values)
    assert rec["format"] == "sparse_bitmap" and parts["bitmap"].numel() == (rows * cols + 7) // 8
    assert values.dtype == {8: torch.int8, 16: torch.int16, 32: torch.float32}[bits]
    assert keep - rows <= values.numel() <= keep  # 8-bit codes that round to 0 are not stored
    if bits == 32:
        assert values.numel() == keep and "scale" not in parts
    else:
        assert parts["scale"].dtype == torch.float32 and parts["scale"].numel() == (rows if scale == "row" else 1)


def test_artifact_shrinks_with_the_budget(tmp_path):
    sizes = []
    for f in (1.0, 0.5, 0.2):
        m = tiny_model(hidden=(64, 64))
        if f < 1:
            dct_sparsify_(m, DCTSparsity(target_bytes_fraction=f, bits=8, targets=("input", "recurrent", "output")))
        save_model(m, tmp_path / f"m{f}")
        sizes.append(artifact_bytes(tmp_path / f"m{f}"))
    assert sizes[0] > sizes[1] > sizes[2]
    assert sizes[2] < 0.35 * sizes[0]


def test_few_coefficients_are_stored_as_csr(tmp_path):
    m = tiny_model()
    dct_sparsify_(m, DCTSparsity(keep=0.02, bits=32))
    _same_after_reload(m, tmp_path / "m")
    assert set(_parts(tmp_path / "m")) == {"indptr", "indices", "values"}


def test_circulant_stores_k_numbers_per_block(cell, tmp_path):
    m = tiny_model(cell)
    block_circulant_(m, BlockCirculant(block=8, targets=("input", "recurrent", "output")))
    _same_after_reload(m, tmp_path / "m")
    rows, cols = dict(m.named_parameters())[W].shape
    assert list(_parts(tmp_path / "m")["c"].shape) == [-(-rows // 8), -(-cols // 8), 8]
    assert list(_parts(tmp_path / "m", "decoder.weight")["c"].shape) == [2, 3, 8]  # (11, 20): partial blocks


# --- corrupt or mismatched files ---------------------------------------------------------
def _rewrite(d, change_parts=None, change_record=None):
    """Edit the stored parts of W and / or its manifest record, re-signing the weights."""
    if change_parts:
        raw = load_file(str(d / "model.safetensors"))
        parts = {k.partition("::")[2]: raw.pop(k) for k in list(raw) if k.partition("::")[0] == W}
        change_parts(parts)
        raw.update({f"{W}::{s}": v.contiguous() for s, v in parts.items()})
        save_file(raw, str(d / "model.safetensors"))
    man = json.loads((d / "model.json").read_text())
    if change_parts:
        man["tensors"][W]["parts"] = sorted(parts)
    if change_record:
        change_record(man["tensors"][W])
    man["weights_sha256"] = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    (d / "model.json").write_text(json.dumps(man))


@pytest.fixture(scope="module")
def _dct_saved_once(tmp_path_factory):
    m = tiny_model()
    dct_sparsify_(m, DCTSparsity(keep=0.25, bits=8))
    return save_model(m, tmp_path_factory.mktemp("dct") / "m")


@pytest.fixture
def dct_saved(_dct_saved_once, tmp_path):
    return Path(shutil.copytree(_dct_saved_once, tmp_path / "m"))


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize("parts,record,match", [
    (lambda p: p.__setitem__("values", p["values"][:-3]), None, "bitmap marks"),
    (lambda p: p.__setitem__("values", p["values"].to(torch.int16)), None, "stored as int16, 8 bits means int8"),
    (lambda p: p.pop("scale"), None, "needs .*scale"),
    (lambda p: p.__setitem__("scale", p["scale"][:5]), None, r"scale must be float32 of shape \[96\]"),
    (lambda p: p.__setitem__("scale", -p["scale"]), None, "non-negative"),
    (None, lambda r: r["options"].__setitem__("bits", 16), "stored as int8, 16 bits means int16"),
    (None, lambda r: r["options"].__setitem__("keep", 10), "more than the 10"),
    (None, lambda r: r["options"].__setitem__("block", [0, 4]), "option block"),
    (None, lambda r: r["options"].__setitem__("scale", "group"), "option scale"),
    (None, lambda r: r["options"].__setitem__("extra", 1), "unknown options"),
    (None, _set("format", "sparse_coo"), "unknown coefficient storage format"),
    (None, _set("dtype", "int32"), "floating dtype"),
])
def test_corrupt_dct_tensors_fail_clearly(dct_saved, parts, record, match):
    _rewrite(dct_saved, parts, record)
    with pytest.raises(ModelFormatError, match=f"tensor {W}.*{match}"):
        load_model(dct_saved)


def test_corrupt_circulant_tensor_fails_clearly(tmp_path):
    m = tiny_model()
    block_circulant_(m, BlockCirculant(block=4))
    save_model(m, tmp_path / "m")
    _rewrite(tmp_path / "m", lambda p: p.__setitem__("c", p["c"][:, :-1]))
    with pytest.raises(ModelFormatError, match=r"block_circulant: part c is float32 \[24, 5, 4\].*\[24, 6, 4\]"):
        load_model(tmp_path / "m")
    _rewrite(tmp_path / "m", lambda p: p.__setitem__("c", torch.zeros(24, 6, 4)), lambda r: r["options"].update(block=0))
    with pytest.raises(ModelFormatError, match="option block must be an integer"):
        load_model(tmp_path / "m")
