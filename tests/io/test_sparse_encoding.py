"""Sparse tensor encodings: exact round trips for every dtype, smaller files, clear errors."""

import json

import pytest
import torch

from rnnslim.io.encodings import get_encoding
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.io.sparse_encoding import (
    choose_format,
    encoded_nbytes,
    index_dtype,
    nonzero_mask,
    pack_bits,
    unpack_bits,
)
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

FORMATS = ["sparse_bitmap", "sparse_csr", "sparse_auto"]


def _sparse(shape, density, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(shape, generator=g) < density
    if dtype == torch.int8:
        vals = torch.randint(-127, 128, shape, generator=g, dtype=torch.int8)
    elif dtype == torch.bool:
        vals = torch.ones(shape, dtype=torch.bool)
    else:
        vals = torch.randn(shape, generator=g).to(dtype)
    return torch.where(keep, vals, torch.zeros((), dtype=dtype))


def _round_trip(t, fmt):
    enc = get_encoding(fmt)
    parts, rec = enc.encode(t, {})
    return enc.decode(parts, {"shape": list(t.shape), **rec}), parts


def _bits_equal(a, b):
    if a.dtype.is_floating_point:
        size = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(size), b.view(size))
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int8, torch.bool])
@pytest.mark.parametrize("shape", [(64, 40), (7, 3, 5), (33,), ()])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.6, 1.0])
def test_round_trip_is_exact(fmt, dtype, shape, density):
    t = _sparse(shape, density, dtype)
    back, _ = _round_trip(t, fmt)
    assert _bits_equal(back, t)


@pytest.mark.parametrize("fmt", FORMATS)
def test_negative_zero_and_nan_survive(fmt):
    t = torch.tensor([[0.0, -0.0, float("nan"), 1.5], [0.0, 0.0, -2.0, float("-inf")]])
    back, _ = _round_trip(t, fmt)
    assert _bits_equal(back, t)


def test_empty_tensor():
    t = torch.zeros(0, 5)
    for fmt in FORMATS:
        back, _ = _round_trip(t, fmt)
        assert back.shape == (0, 5)


def test_bit_packing_order_is_little_endian():
    mask = torch.tensor([True, False, False, False, False, False, False, False, False, True])
    bits = pack_bits(mask)
    assert bits.tolist() == [1, 2]
    assert torch.equal(unpack_bits(bits, 10), mask)


def test_csr_index_dtypes_are_smallest():
    assert index_dtype(255) == torch.uint8 and index_dtype(256) == torch.int16
    assert index_dtype(40000) == torch.int32 and index_dtype(2**31) == torch.int64
    t = _sparse((8, 300), 0.05, torch.float32)
    _, parts = _round_trip(t, "sparse_csr")
    assert parts["indices"].dtype == torch.int16  # 300 columns do not fit uint8
    assert parts["indptr"].dtype == torch.uint8  # ~120 non-zeros


def test_bitmap_part_sizes():
    t = _sparse((100, 64), 0.1, torch.bfloat16)
    _, parts = _round_trip(t, "sparse_bitmap")
    assert parts["bitmap"].numel() == 800 and parts["bitmap"].dtype == torch.uint8
    assert parts["values"].numel() == int(nonzero_mask(t).sum()) and parts["values"].dtype == torch.bfloat16


def test_auto_picks_the_smallest():
    dense = torch.randn(64, 64)
    assert choose_format(dense) == "dense"
    mid = _sparse((256, 256), 0.3, torch.float32)  # bitmap: n/8 + 0.3*4n ; csr: 0.3*(1+4)n
    assert choose_format(mid) == "sparse_bitmap"
    very = _sparse((256, 256), 0.01, torch.float32)
    assert choose_format(very) == "sparse_csr"
    for t in (dense, mid, very):
        fmt = choose_format(t)
        assert all(encoded_nbytes(t, fmt) <= encoded_nbytes(t, f) for f in ("dense", "sparse_bitmap", "sparse_csr"))


def test_options_are_rejected():
    with pytest.raises(ValueError, match="takes no options"):
        get_encoding("sparse_bitmap").encode(torch.zeros(3), {"dtype": "float16"})


def test_corrupt_parts_give_clear_errors():
    t = _sparse((10, 10), 0.3, torch.float32)
    enc = get_encoding("sparse_bitmap")
    parts, rec = enc.encode(t, {})
    parts["values"] = parts["values"][:-1]
    with pytest.raises(ModelFormatError, match="bitmap marks"):
        enc.decode(parts, rec)
    enc = get_encoding("sparse_csr")
    parts, rec = enc.encode(t, {})
    parts["indices"] = parts["indices"].to(torch.int16) + 100
    with pytest.raises(ModelFormatError, match="column index out of range"):
        enc.decode(parts, rec)


def _model():
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=30, embed_size=64,
                     layers=[LayerShape(hidden_size=96), LayerShape(hidden_size=96)], output_size=30)
    return SequenceModel(spec).eval()


@pytest.mark.parametrize("fmt", FORMATS)
def test_model_round_trip_and_smaller_artifact_at_90_percent(tmp_path, fmt):
    m = _model()
    names = [n for n, _ in m.named_parameters() if ".weight_" in n]
    with torch.no_grad():
        for n in names:
            p = m.get_parameter(n)
            p.masked_fill_(torch.rand_like(p) < 0.9, 0.0)
    save_model(m, tmp_path / "dense")
    m.tensor_encodings = {n: {"encoding": fmt} for n in names}
    save_model(m, tmp_path / "sparse")
    dense_bytes, sparse_bytes = artifact_bytes(tmp_path / "dense"), artifact_bytes(tmp_path / "sparse")
    rnn_weights = sum(m.get_parameter(n).numel() for n in names)
    # the recurrent weights shrink from 4 bytes to about 0.5-0.6 bytes each
    assert sparse_bytes < dense_bytes - 3.0 * rnn_weights
    back = load_model(tmp_path / "sparse")
    x = torch.randint(0, 30, (20, 3))
    with torch.no_grad():
        assert torch.equal(back(x)[0], m(x)[0])
    assert back.tensor_encodings == {n: {"encoding": fmt} for n in names}
    manifest = json.loads((tmp_path / "sparse" / "model.json").read_text())
    assert manifest["tensors"][names[0]]["encoding"] == fmt


def test_int8_tensor_in_a_model_file(tmp_path):
    """Quantized codes (int8 buffers) can be stored sparse too."""
    m = _model()
    codes = _sparse((384, 96), 0.1, torch.int8)
    m.register_buffer("codes", codes)
    m.tensor_encodings = {"codes": {"encoding": "sparse_auto"}}
    save_model(m, tmp_path / "q")
    manifest = json.loads((tmp_path / "q" / "model.json").read_text())
    assert manifest["tensors"]["codes"]["format"] == "sparse_csr"
    from safetensors.torch import load_file

    from rnnslim.io.format import WEIGHTS

    raw = load_file(str(tmp_path / "q" / WEIGHTS))
    rec = manifest["tensors"]["codes"]
    back = get_encoding(rec["encoding"]).decode({s: raw[f"codes::{s}" if s else "codes"] for s in rec["parts"]}, rec)
    assert torch.equal(back, codes) and back.dtype == torch.int8
