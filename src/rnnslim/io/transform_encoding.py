"""Weights stored in a transform domain: DCT coefficients and block-circulant matrices.

Two encodings register with rnnslim.io.encodings (names used in model.tensor_encodings);
both store a 2-D weight compactly and rebuild the dense matrix at load, so the torch
kernels run unchanged on the reconstructed weights:

    dct              options {block: [br, bc], keep: K, bits: 8 | 16 | 32, scale: "tensor" | "row"}.
                     C = T_R W T_C^T with T_R, T_C block-diagonal orthonormal DCT-II matrices
                     (blocks of br rows / bc columns; the last block of a dimension may be
                     shorter and gets its own DCT). Row-wise DCT is block [1, cols]. The K
                     coefficients of largest |C| are kept, quantized symmetrically to `bits`
                     (int8 / int16 codes with a float32 scale per tensor or per coefficient row;
                     32 keeps float32 values, no scale), and stored as a sparse array of the
                     shape of W (dense / sparse_bitmap / sparse_csr parts, whichever is
                     smallest, codes that round to 0 not stored) plus part "scale".
    block_circulant  options {block: k}. W is cut into k x k blocks (the last ones may be
                     partial); each block is B[i, j] = c[(i - j) mod k], so part "c" of shape
                     (ceil(R / k), ceil(C / k), k) holds k numbers per block.

Example: `{"encoding": "dct", "block": [8, 8], "keep": 40000, "bits": 8, "scale": "row"}`.

Encoding re-derives what it stores from the weight: the DCT of a weight that lies in the
kept subspace is zero elsewhere up to float round-off, so taking the K largest again
finds the same coefficients, and re-quantizing lands on the same codes; the circulant
projection of a block-circulant matrix is itself. Saving therefore stores what the model
computes with (to float32 round-off). Decoding checks options, part dtypes and shapes
against the record before it builds anything.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from rnnslim.io.encodings import Encoding, get_encoding, register_encoding
from rnnslim.io.errors import ModelFormatError
from rnnslim.io.sparse_encoding import PART_OVERHEAD, choose_format, index_dtype

DCT, CIRCULANT = "dct", "block_circulant"
TRANSFORM_ENCODINGS = frozenset({DCT, CIRCULANT})
CODE_DTYPES = {8: torch.int8, 16: torch.int16, 32: torch.float32}
SCALE_MODES = ("tensor", "row")
_SPARSE_PARTS = {"sparse_bitmap": ("bitmap", "values"), "sparse_csr": ("indptr", "indices", "values")}


# --- the orthonormal DCT-II ---------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _dct_matrix_cached(n: int, dtype: torch.dtype, device: str) -> Tensor:
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # frequency (n, 1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)  # sample (1, n)
    d = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """(n, n) orthonormal DCT-II matrix D (D @ x is scipy.fft.dct(x, norm="ortho"); D.T inverts)."""
    return _dct_matrix_cached(int(n), dtype, str(device))


def _along_rows(x: Tensor, n: int, inverse: bool) -> Tensor:
    """blockdiag(D_n, ..., D_n, D_r) @ x for x (R, C): a DCT of every n-row chunk (the last r < n rows
    get an r-point DCT); D.T when inverse."""
    R = x.shape[0]
    if n <= 1 or R == 0:
        return x
    full = R // n * n
    out = []
    if full:
        d = dct_matrix(n, x.dtype, x.device)
        d = d.T if inverse else d
        out.append(torch.matmul(d, x[:full].reshape(R // n, n, -1)).reshape(full, -1))  # (n, n) @ (R/n, n, C)
    if full < R:
        d = dct_matrix(R - full, x.dtype, x.device)
        out.append((d.T if inverse else d) @ x[full:])
    return torch.cat(out) if len(out) > 1 else out[0]


def block_dct(w: Tensor, block: tuple[int, int], inverse: bool = False) -> Tensor:
    """2-D block DCT-II of a matrix (R, C) with blocks (br, bc) (its inverse when inverse=True)."""
    br, bc = block
    return _along_rows(_along_rows(w, br, inverse).T, bc, inverse).T


def coefficient_codes(c: Tensor, bits: int, per_row: bool) -> tuple[Tensor, Tensor | None]:
    """Symmetric codes of a coefficient matrix (R, C) that is zero outside the kept set:
    (codes in CODE_DTYPES[bits], float32 scale (R,) per row or (1,) per tensor; None at 32 bits)."""
    if bits == 32:
        return c.to(torch.float32), None
    qmax = 2 ** (bits - 1) - 1
    amax = c.abs().amax(dim=1) if per_row else c.abs().amax().reshape(1)  # (R,) or (1,)
    scale = (amax / qmax).to(torch.float32)  # the stored scale; codes are divided by exactly this
    s = scale.double().unsqueeze(1) if per_row else scale.double()
    codes = torch.where(s > 0, torch.round(c / torch.where(s > 0, s, 1.0)), 0.0).clamp(-qmax, qmax)
    return codes.to(CODE_DTYPES[bits]), scale


def dequantize_codes(codes: Tensor, scale: Tensor | None, per_row: bool) -> Tensor:
    """float64 coefficients (R, C) from codes and scale (R,) per row or (1,) per tensor."""
    c = codes.double()
    if scale is None:
        return c
    return c * (scale.double().unsqueeze(1) if per_row else scale.double())


def dct_nbytes(shape: tuple[int, int], keep: int, bits: int, scale: str) -> int:
    """Estimated stored bytes of a dct-encoded (R, C) tensor keeping `keep` coefficients (the smallest
    of dense / bitmap / CSR codes, like sparse_auto, plus the scales)."""
    R, C = shape
    isz = CODE_DTYPES[bits].itemsize
    ptr = index_dtype(keep).itemsize
    idx = index_dtype(max(C - 1, 0)).itemsize
    codes = min(R * C * isz + PART_OVERHEAD, (R * C + 7) // 8 + keep * isz + 2 * PART_OVERHEAD,
                (R + 1) * ptr + keep * (idx + isz) + 3 * PART_OVERHEAD)
    scales = 0 if bits == 32 else 4 * (R if scale == "row" else 1) + PART_OVERHEAD
    return codes + scales


# --- options, shared by encode (ValueError) and decode (ModelFormatError) ------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def dct_options(opts: dict, shape, error: type[Exception] = ValueError) -> dict:
    """Validated dct options for a tensor of `shape` (block clipped to the shape is not applied here)."""
    unknown = set(opts) - {"block", "keep", "bits", "scale"}
    if unknown:
        raise error(f"dct: unknown options {sorted(unknown)}")
    if len(shape) != 2:
        raise error(f"dct stores 2-D weight matrices, got shape {list(shape)}")
    block, keep, bits, scale = opts.get("block"), opts.get("keep"), opts.get("bits", 32), opts.get("scale", "tensor")
    if not (isinstance(block, (list, tuple)) and len(block) == 2 and all(_is_int(b) and b >= 1 for b in block)):
        raise error(f"dct: option block must be two positive integers [rows, cols], got {block!r}"[:200])
    if not _is_int(keep) or not 0 <= keep <= shape[0] * shape[1]:
        raise error(f"dct: option keep must be an integer in [0, {shape[0] * shape[1]}], got {keep!r}"[:200])
    if bits not in CODE_DTYPES or not _is_int(bits):
        raise error(f"dct: option bits must be one of {sorted(CODE_DTYPES)}, got {bits!r}"[:200])
    if scale not in SCALE_MODES:
        raise error(f"dct: option scale must be one of {list(SCALE_MODES)}, got {scale!r}"[:200])
    return {"block": [min(int(block[0]), shape[0]) or 1, min(int(block[1]), shape[1]) or 1], "keep": int(keep),
            "bits": int(bits), "scale": scale}


def _float_dtype(record: dict) -> torch.dtype:
    name = record.get("dtype", "float32")
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ModelFormatError(f"transform-coded tensor must have a floating dtype, the record says {name!r}"[:200])
    return dtype


def _record_shape(record: dict) -> list[int]:
    shape = record.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or not all(_is_int(s) and s >= 1 for s in shape):
        raise ModelFormatError(f"transform-coded tensor needs a 2-D shape, the record says {shape!r}"[:200])
    return shape


# --- dct ---------------------------------------------------------------------------------
def dct_support(c: Tensor, keep: int) -> Tensor:
    """Bool mask (R, C) of the `keep` entries of largest |c|."""
    mask = torch.zeros(c.numel(), dtype=torch.bool, device=c.device)
    if keep:
        mask[torch.topk(c.reshape(-1).abs(), keep, sorted=False).indices] = True
    return mask.reshape(c.shape)


def dct_select(c: Tensor, keep: int) -> Tensor:
    """c (R, C) with all but the `keep` entries of largest |c| set to +0.0 (not -0.0: sparse storage
    decides on the bit pattern)."""
    return torch.where(dct_support(c, keep), c, torch.zeros((), dtype=c.dtype, device=c.device))


def _codes_of(w: Tensor, o: dict) -> tuple[Tensor, Tensor | None]:
    """(codes, scale) that store `w` with validated options `o`."""
    c = dct_select(block_dct(w.detach().cpu().double(), o["block"]), o["keep"])
    return coefficient_codes(c, o["bits"], o["scale"] == "row")


def _weights_of(codes: Tensor, scale: Tensor | None, o: dict, dtype: torch.dtype) -> Tensor:
    return block_dct(dequantize_codes(codes, scale, o["scale"] == "row"), o["block"], inverse=True).to(dtype)


def dct_roundtrip(w: Tensor, opts: dict) -> Tensor:
    """What a dct-encoded `w` loads back as (dtype and device of w); opts as in model.tensor_encodings."""
    o = dct_options(opts, tuple(w.shape))
    return _weights_of(*_codes_of(w, o), o, w.dtype).to(w.device)


def _dct_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    o = dct_options(options, tuple(t.shape))
    codes, scale = _codes_of(t, o)
    fmt = choose_format(codes)
    if fmt == "dense":
        parts, nnz = {"codes": codes.contiguous()}, int((codes != 0).sum())
    else:
        parts, rec = get_encoding(fmt).encode(codes, {})
        nnz = rec["nnz"]
    if scale is not None:
        parts["scale"] = scale
    return parts, {"options": o, "format": fmt, "nnz": nnz}


def _dct_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    shape, dtype = _record_shape(record), _float_dtype(record)
    o = dct_options(record.get("options", {}), shape, ModelFormatError)
    fmt, want = record.get("format"), CODE_DTYPES[o["bits"]]
    names = ("codes",) if fmt == "dense" else _SPARSE_PARTS.get(fmt)
    if names is None:
        raise ModelFormatError(f"dct: unknown coefficient storage format {fmt!r}"[:200])
    expected = set(names) | ({"scale"} if o["bits"] != 32 else set())
    if set(parts) != expected:
        raise ModelFormatError(f"dct: stored parts {sorted(parts)}, format {fmt} at {o['bits']} bits needs "
                               f"{sorted(expected)}")
    values = parts[names[0] if fmt == "dense" else "values"]
    if values.dtype != want:
        raise ModelFormatError(f"dct: coefficients are stored as {str(values.dtype).removeprefix('torch.')}, "
                               f"{o['bits']} bits means {str(want).removeprefix('torch.')}")
    if fmt == "dense":
        if list(values.shape) != shape:
            raise ModelFormatError(f"dct: dense coefficients have shape {list(values.shape)}, expected {shape}")
        codes = values
    else:
        if values.numel() > o["keep"]:
            raise ModelFormatError(f"dct: {values.numel()} coefficients stored, more than the {o['keep']} "
                                   "the record keeps")
        codes = get_encoding(fmt).decode({n: parts[n] for n in names}, {"shape": shape})
    scale = None
    if o["bits"] != 32:
        scale = parts["scale"]
        n_scale = shape[0] if o["scale"] == "row" else 1
        if scale.dtype != torch.float32 or list(scale.shape) != [n_scale]:
            raise ModelFormatError(f"dct: scale must be float32 of shape [{n_scale}], got "
                                   f"{str(scale.dtype).removeprefix('torch.')} {list(scale.shape)}")
        if not bool(torch.isfinite(scale).all()) or bool((scale < 0).any()):
            raise ModelFormatError("dct: scales must be finite and non-negative")
    elif not bool(torch.isfinite(codes).all()):
        raise ModelFormatError("dct: coefficients hold NaN or infinite values")
    return _weights_of(codes, scale, o, dtype)


# --- block circulant -----------------------------------------------------------------------
def _diagonal_index(k: int, device) -> Tensor:
    """(k, k) long: (i - j) mod k, the circulant diagonal of entry (i, j) of a block."""
    i = torch.arange(k, device=device)
    return (i.unsqueeze(1) - i.unsqueeze(0)) % k


def circulant_project(w: Tensor, k: int) -> Tensor:
    """The nearest block-circulant matrix (least squares): c (ceil(R/k), ceil(C/k), k) float64 with
    c[a, b, d] the mean of block (a, b)'s entries on diagonal d (entries outside the matrix in a
    partial edge block do not count; a diagonal with none gets 0)."""
    R, C = w.shape
    nr, nc = -(-R // k), -(-C // k)
    padded = w.new_zeros(nr * k, nc * k, dtype=torch.float64)
    padded[:R, :C] = w.double()
    present = torch.zeros_like(padded)
    present[:R, :C] = 1.0
    d = _diagonal_index(k, w.device).reshape(-1)  # (k*k,)

    def per_diagonal(x: Tensor) -> Tensor:  # (nr*k, nc*k) -> (nr, nc, k) sums over each diagonal
        blocks = x.reshape(nr, k, nc, k).permute(0, 2, 1, 3).reshape(nr, nc, k * k)
        return blocks.new_zeros(nr, nc, k).index_add_(2, d, blocks)

    return per_diagonal(padded) / per_diagonal(present).clamp(min=1.0)


def circulant_expand(c: Tensor, shape) -> Tensor:
    """The dense (R, C) matrix of block-circulant numbers c (nr, nc, k) (dtype of c)."""
    R, C = shape
    nr, nc, k = c.shape
    blocks = c[:, :, _diagonal_index(k, c.device)]  # (nr, nc, k, k)
    return blocks.permute(0, 2, 1, 3).reshape(nr * k, nc * k)[:R, :C]


def nearest_circulant(w: Tensor, k: int) -> Tensor:
    """The nearest block-circulant matrix to w (R, C) with k x k blocks, in w's dtype."""
    return circulant_expand(circulant_project(w, k), tuple(w.shape)).to(w.dtype)


def circulant_options(opts: dict, shape, error: type[Exception] = ValueError) -> int:
    """The block size k of valid block_circulant options for a tensor of `shape`."""
    if set(opts) - {"block"}:
        raise error(f"block_circulant: unknown options {sorted(set(opts) - {'block'})}")
    k = opts.get("block")
    if len(shape) != 2:
        raise error(f"block_circulant stores 2-D weight matrices, got shape {list(shape)}")
    if not _is_int(k) or not 1 <= k <= max(shape):
        raise error(f"block_circulant: option block must be an integer in [1, {max(shape)}], got {k!r}"[:200])
    return k


def circulant_nbytes(shape: tuple[int, int], k: int, itemsize: int = 4) -> int:
    R, C = shape
    return -(-R // k) * -(-C // k) * k * itemsize + PART_OVERHEAD


def _circulant_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    k = circulant_options(options, tuple(t.shape))
    return {"c": circulant_project(t.detach().cpu(), k).to(t.dtype).contiguous()}, {"options": {"block": k}}


def _circulant_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    shape, dtype = _record_shape(record), _float_dtype(record)
    k = circulant_options(record.get("options", {}), shape, ModelFormatError)
    if set(parts) != {"c"}:
        raise ModelFormatError(f"block_circulant: stored parts {sorted(parts)}, expected ['c']")
    c, want = parts["c"], [-(-shape[0] // k), -(-shape[1] // k), k]
    if list(c.shape) != want or not c.dtype.is_floating_point:
        raise ModelFormatError(f"block_circulant: part c is {str(c.dtype).removeprefix('torch.')} "
                               f"{list(c.shape)}, a {shape} matrix in {k} x {k} blocks needs floating {want}")
    return circulant_expand(c, shape).to(dtype)


register_encoding(Encoding(DCT, _dct_encode, _dct_decode))
register_encoding(Encoding(CIRCULANT, _circulant_encode, _circulant_decode))
