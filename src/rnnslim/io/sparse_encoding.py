"""Sparse tensor encodings for the model file, so `artifact_bytes` reflects pruning.

Three encodings register with rnnslim.io.encodings (names used in model.tensor_encodings):

    sparse_bitmap  parts "bitmap" uint8 (ceil(numel / 8),): bit i of byte j says whether
                   element 8j + i (row-major) is stored (little-endian bit order, as numpy's
                   packbits(bitorder="little")); "values" (nnz,) in the tensor's own dtype.
                   Bytes ~ numel / 8 + nnz * itemsize: best at low to medium sparsity.
    sparse_csr     the tensor viewed as (shape[0], rest): "indptr" (rows + 1,) and "indices"
                   (nnz,) column numbers, each in the smallest integer dtype that holds its
                   values (uint8 / int16 / int32 / int64), and "values" (nnz,).
                   Bytes ~ nnz * (index + itemsize): best at very high sparsity.
    sparse_auto    whichever of dense / bitmap / csr is smallest for this tensor (recorded as
                   "format"); a tensor marked sparse_auto stays marked as pruned even when it
                   is stored dense.

"Non-zero" is decided on the bit pattern, so decoding gives back exactly the stored tensor
(-0.0 and NaN included) for every dtype: float32/bf16/fp16, int8 quantized codes, bool.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import Tensor

from rnnslim.io.encodings import Encoding, register_encoding
from rnnslim.io.errors import ModelFormatError

# rough bytes per stored part beyond its data: its safetensors header entry and manifest name
PART_OVERHEAD = 96


class SparseFormat(str, Enum):
    BITMAP = "sparse_bitmap"
    CSR = "sparse_csr"
    AUTO = "sparse_auto"


SPARSE_ENCODINGS = frozenset(f.value for f in SparseFormat)

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def nonzero_mask(t: Tensor) -> Tensor:
    """Bool mask of elements whose bits are not all zero (so -0.0 counts as stored)."""
    if t.dtype == torch.bool:
        return t.clone()
    if t.dtype.is_floating_point or t.dtype.is_complex:
        return t.contiguous().view(_INT_OF_SIZE[t.element_size()]) != 0
    return t != 0


def index_dtype(max_value: int) -> torch.dtype:
    """Smallest integer dtype (uint8, int16, int32, int64) that holds 0..max_value."""
    if max_value <= 255:
        return torch.uint8
    if max_value <= 2**15 - 1:
        return torch.int16
    if max_value <= 2**31 - 1:
        return torch.int32
    return torch.int64


def _as_rows(t: Tensor) -> Tensor:
    """(rows, cols) view used by CSR: dim 0 stays, the rest is flattened; scalars are (1, 1)."""
    if t.dim() == 0:
        return t.reshape(1, 1)
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def _check_no_options(name: str, options: dict) -> None:
    if options:
        raise ValueError(f"encoding {name} takes no options, got {sorted(options)}")


def _shape(record: dict) -> list[int]:
    if "shape" not in record:
        raise ModelFormatError("sparse tensor record has no 'shape'")
    return [int(s) for s in record["shape"]]


# --- bitmap -------------------------------------------------------------------------------
def pack_bits(mask: Tensor) -> Tensor:
    """Bool tensor (any shape) -> uint8 (ceil(numel / 8),), little-endian bit order."""
    flat = mask.reshape(-1).to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros((-flat.numel()) % 8)])
    weights = (1 << torch.arange(8, dtype=torch.int32)).to(flat.device)  # (8,)
    return (flat.view(-1, 8).to(torch.int32) * weights).sum(1).to(torch.uint8)


def unpack_bits(bits: Tensor, numel: int) -> Tensor:
    """uint8 (ceil(numel / 8),) -> bool (numel,)."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return ((bits.unsqueeze(1) >> shifts) & 1).bool().reshape(-1)[:numel]


def _bitmap_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    _check_no_options("sparse_bitmap", options)
    mask = nonzero_mask(t)
    return {"bitmap": pack_bits(mask), "values": t[mask].contiguous()}, {"shape": list(t.shape), "nnz": int(mask.sum())}


def _bitmap_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    shape, bits, values = _shape(record), parts["bitmap"], parts["values"]
    numel = math.prod(shape)
    if bits.dtype != torch.uint8 or bits.numel() != (numel + 7) // 8:
        raise ModelFormatError(f"sparse_bitmap: bitmap has {bits.numel()} {bits.dtype} bytes, a tensor of shape "
                               f"{shape} needs {(numel + 7) // 8} uint8")
    mask = unpack_bits(bits, numel)
    if int(mask.sum()) != values.numel():
        raise ModelFormatError(f"sparse_bitmap: bitmap marks {int(mask.sum())} elements but {values.numel()} "
                               "values are stored")
    out = torch.zeros(numel, dtype=values.dtype, device=values.device)
    out[mask] = values
    return out.reshape(shape)


# --- CSR ----------------------------------------------------------------------------------
def _csr_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    _check_no_options("sparse_csr", options)
    rows = _as_rows(t)  # (R, C)
    mask = nonzero_mask(rows)
    counts = mask.sum(1)  # (R,)
    nnz = int(counts.sum())
    indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(index_dtype(nnz))  # (R + 1,)
    cols = mask.nonzero()[:, 1].to(index_dtype(max(rows.shape[1] - 1, 0)))  # (nnz,) row-major
    return {"indptr": indptr, "indices": cols, "values": rows[mask].contiguous()}, {"shape": list(t.shape), "nnz": nnz}


def _csr_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    shape = _shape(record)
    numel = math.prod(shape)
    n_rows = 1 if not shape else shape[0]
    n_cols = numel // n_rows if n_rows else 0
    indptr, cols, values = parts["indptr"].long(), parts["indices"].long(), parts["values"]
    counts = indptr.diff()
    if (indptr.numel() != n_rows + 1 or int(indptr[0]) != 0 or bool((counts < 0).any())
            or int(indptr[-1]) != values.numel() or cols.numel() != values.numel()):
        raise ModelFormatError(f"sparse_csr: inconsistent row pointers / indices for shape {shape} "
                               f"({indptr.numel()} pointers, {cols.numel()} indices, {values.numel()} values)")
    if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= n_cols):
        raise ModelFormatError(f"sparse_csr: column index out of range for shape {shape}")
    row_of = torch.repeat_interleave(torch.arange(n_rows, device=cols.device), counts)  # (nnz,)
    out = torch.zeros(numel, dtype=values.dtype, device=values.device)
    out[row_of * n_cols + cols] = values
    return out.reshape(shape)


# --- choice -------------------------------------------------------------------------------
def encoded_nbytes(t: Tensor, fmt: str) -> int:
    """Estimated stored bytes of `t` in a format ("dense", "sparse_bitmap", "sparse_csr")."""
    n, isz = t.numel(), t.element_size()
    if fmt == "dense":
        return n * isz + PART_OVERHEAD
    nnz = int(nonzero_mask(t).sum())
    if fmt == SparseFormat.BITMAP.value:
        return (n + 7) // 8 + nnz * isz + 2 * PART_OVERHEAD
    if fmt == SparseFormat.CSR.value:
        rows = _as_rows(t)
        ptr = torch.empty((), dtype=index_dtype(nnz)).element_size()
        idx = torch.empty((), dtype=index_dtype(max(rows.shape[1] - 1, 0))).element_size()
        return (rows.shape[0] + 1) * ptr + nnz * (idx + isz) + 3 * PART_OVERHEAD
    raise ValueError(f"no size estimate for format {fmt!r}; use dense, sparse_bitmap or sparse_csr")


def choose_format(t: Tensor) -> str:
    """The smallest of dense / sparse_bitmap / sparse_csr for `t` (dense on ties)."""
    sizes = {f: encoded_nbytes(t, f) for f in ("dense", SparseFormat.BITMAP.value, SparseFormat.CSR.value)}
    return min(sizes, key=lambda f: (sizes[f], f != "dense"))


def _auto_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    _check_no_options("sparse_auto", options)
    fmt = choose_format(t)
    if fmt == "dense":
        return {"": t.contiguous()}, {"format": "dense", "shape": list(t.shape)}
    parts, rec = _ENCODERS[fmt](t, {})
    return parts, {**rec, "format": fmt}


def _auto_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    fmt = record.get("format")
    if fmt == "dense":
        return parts[""]
    if fmt not in _DECODERS:
        raise ModelFormatError(f"sparse_auto: unknown stored format {fmt!r}")
    return _DECODERS[fmt](parts, record)


_ENCODERS = {SparseFormat.BITMAP.value: _bitmap_encode, SparseFormat.CSR.value: _csr_encode}
_DECODERS = {SparseFormat.BITMAP.value: _bitmap_decode, SparseFormat.CSR.value: _csr_decode}

register_encoding(Encoding(SparseFormat.BITMAP.value, _bitmap_encode, _bitmap_decode))
register_encoding(Encoding(SparseFormat.CSR.value, _csr_encode, _csr_decode))
register_encoding(Encoding(SparseFormat.AUTO.value, _auto_encode, _auto_decode))
