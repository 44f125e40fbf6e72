"""Tensor encodings for quantized storage (registered with rnnslim.io.encodings).

"lzma": the raw bytes of any tensor compressed with LZMA2 (raw stream, no container).
LZMA's adaptive range coder is a real entropy coder: on the packed index buffers of
k-means or low-bit weights it gets within a few percent of the order-0 entropy of the
indices, so `artifact_bytes` reflects the entropy-coded size. Used for buffers that a
WeightFormat marks with entropy_coding=True (see api.py); decode restores the exact
bytes, so values and outputs do not change.
"""

from __future__ import annotations

import lzma

import torch
from torch import Tensor

from rnnslim.io.encodings import Encoding, register_encoding
from rnnslim.io.errors import ModelFormatError

DEFAULT_PRESET = 9 | lzma.PRESET_EXTREME


def _filters(preset: int) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": preset}]


def lzma_bytes(t: Tensor, preset: int = DEFAULT_PRESET) -> bytes:
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_filters(preset))


def _encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    preset = int(options.get("preset", DEFAULT_PRESET))
    blob = lzma_bytes(t, preset)
    stored = torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else torch.zeros(0, dtype=torch.uint8)
    return {"": stored}, {"options": {"preset": preset}, "raw_bytes": t.numel() * t.element_size()}


def _decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    preset = int(record.get("options", {}).get("preset", DEFAULT_PRESET))
    dtype = getattr(torch, record["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise ModelFormatError(f"lzma-coded tensor has unknown dtype {record['dtype']!r}")
    try:
        raw = lzma.decompress(parts[""].numpy().tobytes(), format=lzma.FORMAT_RAW, filters=_filters(preset))
    except lzma.LZMAError as e:
        raise ModelFormatError(f"corrupt lzma-coded tensor: {e}") from None
    shape = record["shape"]
    numel = 1
    for s in shape:
        numel *= s
    if len(raw) != numel * torch.empty((), dtype=dtype).element_size():
        raise ModelFormatError(f"lzma-coded tensor decodes to {len(raw)} bytes, expected shape {shape} of {dtype}")
    if not raw:
        return torch.zeros(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


LZMA = register_encoding(Encoding("lzma", _encode, _decode))
