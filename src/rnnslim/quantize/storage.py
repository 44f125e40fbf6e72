"""Tensor encodings for quantized storage (registered with rnnslim.io.encodings).

"lzma": the raw bytes of any tensor compressed with LZMA2 (raw stream, no container).
LZMA's adaptive range coder is a real entropy coder: on the packed index buffers of
k-means or low-bit weights it gets within a few percent of the order-0 entropy of the
indices, so `artifact_bytes` reflects the entropy-coded size. Used for buffers that a
WeightFormat marks with entropy_coding=True (see api.py); decode restores the exact
bytes, so values and outputs do not change.

Option `pruned: true` (kept in the manifest, so it survives save / load): these are the codes of a
pruned weight (a sparsity stage marked it before it was quantized). Nothing else records that
once the float weight is gone, and a QAT stage that continues the quantized layer needs it to
hold the pruning mask (rnnslim.prune.masks.masks_from_model).
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
    kept = {"preset": preset, **({"pruned": True} if options.get("pruned") else {})}
    return {"": stored}, {"options": kept, "raw_bytes": t.numel() * t.element_size()}


def _decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    name = record.get("dtype")
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ModelFormatError(f"lzma-coded tensor has unknown dtype {name!r}")
    shape = record.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ModelFormatError(f"lzma-coded tensor has an invalid shape {shape!r}")
    numel = 1
    for s in shape:
        numel *= s
    expected = numel * torch.empty((), dtype=dtype).element_size()
    try:
        preset = int(record.get("options", {}).get("preset", DEFAULT_PRESET))
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_filters(preset))
        # never inflate past what the declared shape needs (a small blob can expand to gigabytes)
        raw = dec.decompress(parts[""].numpy().tobytes(), max_length=expected + 1)
    except (lzma.LZMAError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise ModelFormatError(f"corrupt lzma-coded tensor: {e}") from None
    if len(raw) != expected:
        more = " or more" if len(raw) > expected else ""
        raise ModelFormatError(f"lzma-coded tensor decodes to {len(raw)}{more} bytes, expected shape {shape} of {dtype}")
    if not raw:
        return torch.zeros(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


LZMA = register_encoding(Encoding("lzma", _encode, _decode))
