"""Bit packing of unsigned low-bit codes into bytes.

Codes of `bits` bits (values in [0, 2**bits)) are written as one little-endian bit
stream: code k occupies bits [k*bits, (k+1)*bits) of the stream, least significant bit
first, and stream bit j is bit (j % 8) of byte j // 8. So 4-bit codes put code 2i in the
low nibble and 2i+1 in the high nibble of byte i, 2-bit codes fill a byte with four codes
from the low bits up, and 3-bit codes (8 per 3 bytes) straddle byte boundaries. The last
byte is zero-padded. Any width 1..8 works; 8 is a plain copy.
"""

from __future__ import annotations

import torch
from torch import Tensor


def packed_size(numel: int, bits: int) -> int:
    """Bytes needed for `numel` codes of `bits` bits."""
    _check_bits(bits)
    return (numel * bits + 7) // 8


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 8:
        raise ValueError(f"can pack codes of 1 to 8 bits, not {bits}")


def pack_bits(codes: Tensor, bits: int) -> Tensor:
    """Flatten `codes` (any integer dtype, values in [0, 2**bits)) into a uint8 tensor of
    packed_size(codes.numel(), bits) bytes."""
    _check_bits(bits)
    flat = codes.reshape(-1)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(f"codes must lie in [0, {1 << bits}) to pack into {bits} bits; "
                         f"got [{int(flat.min())}, {int(flat.max())}]")
    flat = flat.to(torch.uint8)
    if bits == 8:
        return flat.clone()
    if 8 % bits == 0:  # 1, 2, 4 bits: whole codes per byte, no straddling
        per = 8 // bits
        pad = (-flat.numel()) % per
        v = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, per).to(torch.int32)  # (bytes, per)
        shifts = torch.arange(per, dtype=torch.int32) * bits
        return (v << shifts).sum(dim=1).to(torch.uint8)
    # general width: expand to a bit stream (numel * bits,), then group by 8
    shifts = torch.arange(bits, dtype=torch.uint8)
    stream = ((flat.unsqueeze(1) >> shifts) & 1).reshape(-1)  # LSB first per code
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).reshape(-1, 8).to(torch.int32)
    return (stream << torch.arange(8, dtype=torch.int32)).sum(dim=1).to(torch.uint8)


def unpack_bits(packed: Tensor, bits: int, numel: int) -> Tensor:
    """Inverse of pack_bits: the first `numel` codes as a uint8 tensor of shape (numel,)."""
    _check_bits(bits)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed codes must be uint8, got {packed.dtype}")
    need = packed_size(numel, bits)
    if packed.numel() < need:
        raise ValueError(f"{packed.numel()} packed bytes hold fewer than {numel} codes of {bits} bits ({need} needed)")
    flat = packed.reshape(-1)[:need]
    if bits == 8:
        return flat.clone()
    mask = (1 << bits) - 1
    if 8 % bits == 0:
        shifts = torch.arange(8 // bits, dtype=torch.uint8) * bits
        return ((flat.unsqueeze(1) >> shifts) & mask).reshape(-1)[:numel]
    stream = ((flat.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1)[: numel * bits]
    weights = (1 << torch.arange(bits, dtype=torch.int32))
    return (stream.reshape(numel, bits).to(torch.int32) * weights).sum(dim=1).to(torch.uint8)
