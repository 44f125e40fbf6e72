"""Weight formats: how one weight matrix is stored and turned back into floats.

Each format is a frozen pydantic config that can
    layout(shape)        -> {buffer: (shape, dtype)}   (to rebuild an empty module at load)
    encode(w)            -> {buffer: tensor}           (w: (rows, cols) float)
    decode(bufs, shape)  -> float32 tensor of `shape`
    roundtrip(w)         -> decode(encode(w)) without the packing (fast, for QAT)

Formats (the `format` field discriminates them in JSON):
    int      affine integer codes of 2..8 bits, per-tensor / per-row / group-wise scales,
             symmetric or asymmetric, optional MSE clipping; codes bit-packed
    ternary  {-a, 0, +a} per granule (threshold search around 0.7 mean|w|); 2-bit codes
    kmeans   a per-tensor codebook of K values + ceil(log2 K)-bit indices
    float    fp16 / bf16 copy

`codes` buffers may be entropy coded on disk (lzma, see storage.py) with
entropy_coding=True; that changes the artifact size, not the values.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from torch import Tensor

from rnnslim.quantize.kmeans import KMeansInit, kmeans_1d
from rnnslim.quantize.packing import pack_bits, packed_size, unpack_bits
from rnnslim.quantize.primitives import (
    ClipMethod,
    Granularity,
    QSpec,
    compute_qparams,
    dequantize,
    granule_view,
    quantize,
    scale_shape,
    search_clip_qparams,
)

Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]


class FloatDtype(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"

    @property
    def torch(self) -> torch.dtype:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.value]


def _round_scale(scale: Tensor, dtype: FloatDtype) -> Tensor:
    """The scale as it will be stored (fp16 / bf16 rounding), back in float32, never zero."""
    dt = dtype.torch
    s = scale.float().clamp_max(torch.finfo(dt).max).to(dt)
    tiny = torch.finfo(dt).smallest_normal if dt is torch.float32 else 2.0 ** -24
    return torch.where(s > 0, s, torch.full_like(s, tiny)).float()


def _rows_cols(shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"weight formats apply to matrices, got shape {tuple(shape)}")
    return int(shape[0]), math.prod(int(s) for s in shape[1:])


class BaseFormat(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def layout(self, shape) -> Layout:
        raise NotImplementedError

    def encode(self, w: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def decode(self, bufs: dict[str, Tensor], shape) -> Tensor:
        raise NotImplementedError

    def roundtrip(self, w: Tensor) -> Tensor:
        return self.decode(self.encode(w), w.shape)

    def describe(self) -> str:
        raise NotImplementedError

    def entropy_coded(self) -> list[str]:
        """Buffers to store with the lzma encoding."""
        return ["codes"] if getattr(self, "entropy_coding", False) else []

    def stored_bytes(self, shape) -> int:
        """Bytes of this format's buffers for a weight of `shape` (before entropy coding)."""
        return sum(math.prod(s) * torch.empty((), dtype=dt).element_size() for s, dt in self.layout(shape).values())

    def bits_per_weight(self, shape) -> float:
        return 8 * self.stored_bytes(shape) / math.prod(int(s) for s in shape)


class IntFormat(BaseFormat):
    format: Literal["int"] = "int"
    bits: int = Field(default=4, description="code width; 2..8 (use ternary for 1.58 bits)")
    granularity: Granularity = Granularity.GROUP
    group_size: int = Field(default=64, ge=1)
    symmetric: bool = True
    clip: ClipMethod = ClipMethod.MINMAX
    scale_dtype: FloatDtype = FloatDtype.FP16
    entropy_coding: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntFormat:
        if not 2 <= self.bits <= 8:
            hint = " (1-bit weights are not supported; ternary gives {-a, 0, +a})" if self.bits == 1 else ""
            raise ValueError(f"integer weight formats support 2 to 8 bits, got {self.bits}{hint}")
        return self

    @property
    def spec(self) -> QSpec:
        return QSpec(bits=self.bits, symmetric=self.symmetric, granularity=self.granularity, group_size=self.group_size)

    def layout(self, shape) -> Layout:
        rows, cols = _rows_cols(shape)
        ss = scale_shape((rows, cols), self.spec)
        out = {"codes": ((packed_size(rows * cols, self.bits),), torch.uint8), "scale": (ss, self.scale_dtype.torch)}
        if not self.symmetric:
            out["zero_point"] = (ss, torch.uint8)
        return out

    def _to_code(self, q: Tensor) -> Tensor:
        """Unsigned code of an integer level: two's complement for symmetric (so a zero
        weight is an all-zero code, which sparse and entropy coders of the codes exploit),
        the level itself for asymmetric (already in [0, 2**bits))."""
        return q & ((1 << self.bits) - 1) if self.symmetric else q

    def _from_code(self, c: Tensor) -> Tensor:
        if not self.symmetric:
            return c
        half = 1 << (self.bits - 1)
        return torch.where(c >= half, c - (1 << self.bits), c)

    def qparams(self, w2: Tensor) -> tuple[Tensor, Tensor]:
        """(scale, zero point) of a (rows, cols) matrix with this format's rule (min-max or MSE
        clip), scales rounded to their storage dtype; also used per group slice by GPTQ."""
        return self._qparams(w2)

    def _qparams(self, w2: Tensor) -> tuple[Tensor, Tensor]:
        spec = self.spec
        scale, zp = (search_clip_qparams(w2, spec) if self.clip is ClipMethod.MSE else compute_qparams(w2, spec))
        return _round_scale(scale, self.scale_dtype), zp

    def encode(self, w: Tensor) -> dict[str, Tensor]:
        rows, cols = _rows_cols(w.shape)
        w2 = w.detach().float().reshape(rows, cols)
        scale, zp = self._qparams(w2)
        return self.encode_levels(quantize(w2, scale, zp, self.spec), scale, zp)

    def encode_levels(self, q: Tensor, scale: Tensor, zp: Tensor) -> dict[str, Tensor]:
        """Buffers for given integer levels q (rows, cols) int32 in [qmin, qmax] and their
        (scale, zero point) of the layout's shape: for callers that choose the levels
        themselves (error-compensating GPTQ in rnnslim.reconstruct)."""
        out = {"codes": pack_bits(self._to_code(q.to(torch.int32).reshape(-1)), self.bits),
               "scale": scale.to(self.scale_dtype.torch)}
        if not self.symmetric:
            out["zero_point"] = zp.to(torch.uint8)
        return out

    def decode(self, bufs: dict[str, Tensor], shape) -> Tensor:
        rows, cols = _rows_cols(shape)
        q = self._from_code(unpack_bits(bufs["codes"], self.bits, rows * cols).to(torch.int32)).reshape(rows, cols)
        scale = bufs["scale"].float()
        zp = (bufs["zero_point"].to(torch.int32) if not self.symmetric
              else torch.zeros(scale.shape, dtype=torch.int32, device=scale.device))
        return dequantize(q, scale, zp, self.spec).reshape(shape)

    def roundtrip(self, w: Tensor) -> Tensor:
        rows, cols = _rows_cols(w.shape)
        w2 = w.detach().float().reshape(rows, cols)
        scale, zp = self._qparams(w2)
        return dequantize(quantize(w2, scale, zp, self.spec), scale, zp, self.spec).reshape(w.shape)

    def describe(self) -> str:
        gran = {Granularity.TENSOR: "tensor", Granularity.CHANNEL: "channel"}.get(self.granularity, f"g{self.group_size}")
        return (f"int{self.bits} {gran} {'sym' if self.symmetric else 'asym'}"
                + (" mse" if self.clip is ClipMethod.MSE else "") + (" +lzma" if self.entropy_coding else ""))


class TernaryFormat(BaseFormat):
    """w ~ a * t with t in {-1, 0, +1} per granule: t = sign(w) where |w| > delta, and a the
    mean |w| over those weights (Li & Liu, Ternary Weight Networks). delta is searched
    around 0.7 mean|w| per granule to minimise the squared error."""

    format: Literal["ternary"] = "ternary"
    granularity: Granularity = Granularity.GROUP
    group_size: int = Field(default=64, ge=1)
    scale_dtype: FloatDtype = FloatDtype.FP16
    entropy_coding: bool = False

    @property
    def spec(self) -> QSpec:  # only its granularity is used
        return QSpec(bits=2, granularity=self.granularity, group_size=self.group_size)

    def layout(self, shape) -> Layout:
        rows, cols = _rows_cols(shape)
        return {"codes": ((packed_size(rows * cols, 2),), torch.uint8),
                "scale": (scale_shape((rows, cols), self.spec), self.scale_dtype.torch)}

    def _ternarize(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(t in {-1,0,1} shaped like w's granule view, scale per granule)."""
        rows, cols = _rows_cols(w.shape)
        v = granule_view(w.detach().float().reshape(rows, cols), self.spec)  # (..., n)
        a_abs = v.abs()
        mean = a_abs.mean(-1, keepdim=True)
        best_err = best_a = best_mask = None
        for f in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2):
            mask = a_abs > f * mean
            a = (a_abs * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)
            err = (v - a * v.sign() * mask).pow(2).sum(-1, keepdim=True)
            if best_err is None:
                best_err, best_a, best_mask = err, a, mask
            else:
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_a = torch.where(better, a, best_a)
                best_mask = torch.where(better, mask, best_mask)
        t = (v.sign() * best_mask).to(torch.int8)
        scale = _round_scale(best_a.squeeze(-1), self.scale_dtype)
        return t, scale.reshape(scale_shape((rows, cols), self.spec))

    def encode(self, w: Tensor) -> dict[str, Tensor]:
        t, scale = self._ternarize(w)
        codes = t.reshape(-1).to(torch.int32) & 3  # two's complement: 0 -> 0, +1 -> 1, -1 -> 3
        return {"codes": pack_bits(codes, 2), "scale": scale.to(self.scale_dtype.torch)}

    def _apply(self, t: Tensor, scale: Tensor, shape) -> Tensor:
        rows, cols = _rows_cols(shape)
        s = scale.float()
        if self.granularity is Granularity.GROUP:
            s = s.repeat_interleave(self.group_size, dim=1)
        elif self.granularity is Granularity.CHANNEL:
            s = s.unsqueeze(1)
        return (t.reshape(rows, cols).float() * s).reshape(shape)

    def decode(self, bufs: dict[str, Tensor], shape) -> Tensor:
        rows, cols = _rows_cols(shape)
        c = unpack_bits(bufs["codes"], 2, rows * cols).to(torch.int8)
        t = torch.where(c == 3, -1, c).to(torch.int8)
        return self._apply(t, bufs["scale"], shape)

    def roundtrip(self, w: Tensor) -> Tensor:
        t, scale = self._ternarize(w)
        return self._apply(t, scale, w.shape)

    def describe(self) -> str:
        gran = {Granularity.TENSOR: "tensor", Granularity.CHANNEL: "channel"}.get(self.granularity, f"g{self.group_size}")
        return f"ternary {gran}" + (" +lzma" if self.entropy_coding else "")


class KMeansFormat(BaseFormat):
    """Weight sharing: one codebook of `clusters` values per tensor plus packed indices.
    With pinned zero (the tensor has exact zeros), codebook[0] == 0.0."""

    format: Literal["kmeans"] = "kmeans"
    clusters: int = Field(default=16, ge=2, le=256)
    iters: int = Field(default=30, ge=1)
    init: KMeansInit = KMeansInit.LINEAR
    pin_zero: bool = Field(default=True, description="keep exact zeros exactly zero (pruned weights)")
    entropy_coding: bool = False

    @property
    def index_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.clusters)))

    def layout(self, shape) -> Layout:
        rows, cols = _rows_cols(shape)
        return {"codes": ((packed_size(rows * cols, self.index_bits),), torch.uint8),
                "codebook": ((self.clusters,), torch.float32)}

    def _cluster(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(codebook (K,), indices (numel,)) on the CPU (clustering is a sort and prefix sums)."""
        wf = w.detach().float().cpu()
        pin = self.pin_zero and bool((wf == 0).any())
        codebook, idx = kmeans_1d(wf, self.clusters, iters=self.iters, init=self.init, pin_zero=pin)
        if pin:  # move the zero centroid to index 0, so pruned weights have all-zero codes
            z = int((codebook == 0).nonzero()[0, 0])
            order = torch.cat([torch.tensor([z]), torch.arange(self.clusters)[torch.arange(self.clusters) != z]])
            codebook, idx = codebook[order], torch.argsort(order)[idx]
        return codebook, idx

    def encode(self, w: Tensor) -> dict[str, Tensor]:
        codebook, idx = self._cluster(w)
        return {"codes": pack_bits(idx, self.index_bits), "codebook": codebook}

    def decode(self, bufs: dict[str, Tensor], shape) -> Tensor:
        rows, cols = _rows_cols(shape)
        idx = unpack_bits(bufs["codes"], self.index_bits, rows * cols).long()
        return bufs["codebook"].float()[idx].reshape(shape)

    def roundtrip(self, w: Tensor) -> Tensor:
        codebook, idx = self._cluster(w)
        return codebook[idx].reshape(w.shape).to(w.device)

    def describe(self) -> str:
        return f"kmeans{self.clusters}" + (" +lzma" if self.entropy_coding else "")


class FloatFormat(BaseFormat):
    format: Literal["float"] = "float"
    dtype: FloatDtype = FloatDtype.BF16

    @model_validator(mode="after")
    def _check(self) -> FloatFormat:
        if self.dtype is FloatDtype.FP32:
            raise ValueError("float weight format stores fp16 or bf16; fp32 is the unquantized model")
        return self

    def layout(self, shape) -> Layout:
        return {"weight": (tuple(int(s) for s in shape), self.dtype.torch)}

    def encode(self, w: Tensor) -> dict[str, Tensor]:
        if self.dtype is FloatDtype.FP16 and w.numel() and w.detach().abs().max() > torch.finfo(torch.float16).max:
            raise ValueError(f"weights up to {w.detach().abs().max().item():.3g} overflow fp16 (max 65504); use bf16")
        return {"weight": w.detach().to(self.dtype.torch).contiguous()}

    def decode(self, bufs: dict[str, Tensor], shape) -> Tensor:
        return bufs["weight"].float().reshape(shape)

    def describe(self) -> str:
        return self.dtype.value


WeightFormat = Annotated[IntFormat | TernaryFormat | KMeansFormat | FloatFormat, Field(discriminator="format")]
_ADAPTER = TypeAdapter(WeightFormat)


def parse_format(data: dict | BaseFormat) -> BaseFormat:
    """A WeightFormat from its JSON dict (as written by `fmt.model_dump(mode="json")`)."""
    return data if isinstance(data, BaseFormat) else _ADAPTER.validate_python(data)


MIN_FITTED_GROUP = 8  # below this a group costs more in scales than it saves: one scale per row instead


def fit_group_size(fmt: BaseFormat, columns: list[int]) -> tuple[BaseFormat, str]:
    """`fmt` with a group size that divides every weight's column count: the largest
    divisor of their gcd not above the requested size (>= MIN_FITTED_GROUP), else one scale
    per row. Returns (format, note); the note is empty when nothing changed."""
    if getattr(fmt, "granularity", None) is not Granularity.GROUP or not columns:
        return fmt, ""
    g = fmt.group_size
    common = math.gcd(*columns)
    if common % g == 0:
        return fmt, ""
    fit = max((d for d in range(1, min(g, common) + 1) if common % d == 0), default=1)
    if fit >= MIN_FITTED_GROUP:
        return fmt.model_copy(update={"group_size": fit}), (f"group_size {g} does not divide the {sorted(set(columns))} "
                                                           f"input columns: group {fit} used")
    return (fmt.model_copy(update={"granularity": Granularity.CHANNEL}),
            f"group_size {g} does not divide the {sorted(set(columns))} input columns and no divisor >= "
            f"{MIN_FITTED_GROUP} does: one scale per row used")


def int_format(bits: int, group_size: int | None = 64, **kw) -> IntFormat:
    """Shorthand: group_size=None means one scale per output row (per gate row)."""
    if group_size is None:
        return IntFormat(bits=bits, granularity=Granularity.CHANNEL, **kw)
    return IntFormat(bits=bits, granularity=Granularity.GROUP, group_size=group_size, **kw)
