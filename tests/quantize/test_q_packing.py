"""Bit packing of low-bit codes."""

import pytest
import torch

from rnnslim.quantize.packing import pack_bits, packed_size, unpack_bits


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000])
def test_round_trip(bits, n):
    codes = torch.randint(0, 1 << bits, (n,))
    packed = pack_bits(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == packed_size(n, bits) == (n * bits + 7) // 8
    assert torch.equal(unpack_bits(packed, bits, n), codes.to(torch.uint8))


def test_layout_is_little_endian_low_nibble_first():
    assert pack_bits(torch.tensor([1, 2]), 4).tolist() == [0x21]
    assert pack_bits(torch.tensor([1, 2, 3, 0]), 2).tolist() == [0b00111001]
    # 3-bit codes straddle bytes: 0b101, 0b011, 0b111 -> stream 101 110 111 (LSB first)
    assert pack_bits(torch.tensor([5, 3, 7]), 3).tolist() == [0b11011101, 0b1]


def test_shape_is_flattened():
    codes = torch.randint(0, 16, (6, 10))
    assert torch.equal(unpack_bits(pack_bits(codes, 4), 4, 60).reshape(6, 10), codes.to(torch.uint8))


def test_errors():
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(torch.tensor([16]), 4)
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(torch.tensor([-1]), 4)
    with pytest.raises(ValueError, match="1 to 8 bits"):
        pack_bits(torch.tensor([1]), 9)
    with pytest.raises(ValueError, match="fewer than"):
        unpack_bits(torch.zeros(2, dtype=torch.uint8), 4, 5)
    with pytest.raises(TypeError, match="uint8"):
        unpack_bits(torch.zeros(2, dtype=torch.int32), 4, 4)
