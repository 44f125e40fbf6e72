"""Weight formats: encode/decode agree with roundtrip, sizes, zeros, errors, JSON."""

import pytest
import torch

from rnnslim.quantize.formats import (
    FloatFormat,
    IntFormat,
    KMeansFormat,
    TernaryFormat,
    int_format,
    parse_format,
)
from rnnslim.quantize.packing import unpack_bits
from rnnslim.quantize.primitives import Granularity, sqnr_db

FORMATS = [int_format(8, None), int_format(4, 64), int_format(4, 32, symmetric=False, clip="mse"), int_format(3, 16),
           int_format(2, 64, symmetric=False), IntFormat(bits=6, granularity=Granularity.TENSOR),
           TernaryFormat(group_size=32), TernaryFormat(granularity=Granularity.CHANNEL), KMeansFormat(clusters=16),
           KMeansFormat(clusters=5), FloatFormat(dtype="fp16"), FloatFormat(dtype="bf16")]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.describe())
def test_encode_decode_equals_roundtrip_and_layout(fmt):
    w = torch.randn(48, 128) * 0.1
    bufs = fmt.encode(w)
    layout = fmt.layout(w.shape)
    assert set(bufs) == set(layout)
    for k, t in bufs.items():
        assert tuple(t.shape) == layout[k][0] and t.dtype == layout[k][1], k
    dec = fmt.decode(bufs, w.shape)
    assert dec.dtype == torch.float32 and dec.shape == w.shape
    assert torch.equal(dec, fmt.roundtrip(w))
    assert parse_format(fmt.model_dump(mode="json")) == fmt


def test_bits_per_weight_and_quality_order():
    shape = (512, 512)
    assert int_format(8, None).bits_per_weight(shape) == pytest.approx(8 + 16 / 512)
    assert int_format(4, 64).bits_per_weight(shape) == pytest.approx(4 + 16 / 64)
    assert int_format(4, 64, symmetric=False).bits_per_weight(shape) == pytest.approx(4 + 24 / 64)
    assert TernaryFormat(group_size=64).bits_per_weight(shape) == pytest.approx(2 + 16 / 64)
    assert KMeansFormat(clusters=16).bits_per_weight(shape) == pytest.approx(4 + 16 * 32 / 512**2)
    w = torch.randn(shape) * 0.05
    s = {b: sqnr_db(w, int_format(b, 64).roundtrip(w)) for b in (8, 4, 3, 2)}
    assert s[8] > 40 and 25 > s[4] > 18 and s[4] > s[3] > s[2]
    assert sqnr_db(w, KMeansFormat().roundtrip(w)) > sqnr_db(w, int_format(4, None).roundtrip(w))


@pytest.mark.parametrize("fmt", [int_format(4, 32), int_format(2, 32, symmetric=False, clip="mse"),
                                 TernaryFormat(group_size=32), KMeansFormat(clusters=8)], ids=lambda f: f.describe())
def test_pruned_zeros_stay_zero(fmt):
    w = torch.randn(64, 64)
    w[torch.rand_like(w) < 0.6] = 0
    assert torch.all(fmt.roundtrip(w)[w == 0] == 0)


@pytest.mark.parametrize("fmt", [int_format(4, 32), int_format(3, 32), int_format(8, None), TernaryFormat(group_size=32),
                                 KMeansFormat(clusters=16)], ids=lambda f: f.describe())
def test_zero_weights_have_all_zero_codes(fmt):
    w = torch.randn(64, 64)
    w[:, :32] = 0  # whole pruned rows halves -> whole zero bytes in the packed codes
    codes = fmt.encode(w)["codes"]
    bits = getattr(fmt, "bits", None) or getattr(fmt, "index_bits", 2)
    assert torch.all(unpack_bits(codes, bits, w.numel()).reshape(64, 64)[:, :32] == 0)


def test_scales_are_rounded_before_quantizing():
    # the stored fp16 scale is the one used to quantize, so decode reproduces roundtrip exactly
    w = torch.randn(16, 64) * 1e-3
    fmt = int_format(4, 16, scale_dtype="fp16")
    assert fmt.encode(w)["scale"].dtype == torch.float16
    assert torch.equal(fmt.decode(fmt.encode(w), w.shape), fmt.roundtrip(w))


def test_errors():
    with pytest.raises(ValueError, match="2 to 8 bits.*ternary"):
        IntFormat(bits=1)
    with pytest.raises(ValueError, match="2 to 8 bits"):
        IntFormat(bits=9)
    with pytest.raises(ValueError, match="does not divide"):
        int_format(4, 64).encode(torch.randn(8, 96))
    with pytest.raises(ValueError, match="matrices"):
        int_format(4, 64).encode(torch.randn(64))
    with pytest.raises(ValueError, match="overflow fp16"):
        FloatFormat(dtype="fp16").encode(torch.tensor([[1e6]]))
    with pytest.raises(ValueError, match="fp32"):
        FloatFormat(dtype="fp32")
    with pytest.raises(ValueError):
        KMeansFormat(clusters=300)
    with pytest.raises(ValueError):
        parse_format({"format": "int", "bits": 4, "colour": "red"})
