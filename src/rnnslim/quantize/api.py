"""One verb for weight quantization, dispatched on the config's type (torchao style).

    quantize_(model, WeightOnly(bits=4, group_size=64))        # int4 group-wise, all layers
    quantize_(model, WeightOnly(bits=8, group_size=None))      # int8 per gate row
    quantize_(model, Ternary(group_size=64), filter=lambda path, m: path.startswith("rnn"))
    quantize_(model, KMeans(clusters=16, entropy_coding=True))
    quantize_(model, HalfPrecision(dtype="bf16"))
    quantize_(model, QAT(weights=WeightOnly(bits=4)))          # step "prepare" (default)
    train(model, task, ...)
    quantize_(model, QAT(step="convert"))

Each call replaces the target float layers (see targets.py) by weight-only quantized
layers (lowbit.py), records what it did in `model.history`, marks entropy-coded buffers
in `model.tensor_encodings`, and returns the model. `apply_format_` is the same for a
bare WeightFormat and returns per-layer records (SQNR of the weights, bits, bytes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rnnslim.io.modules import set_submodule
from rnnslim.io.tied import tie_quantized_
from rnnslim.io.transform_encoding import TRANSFORM_ENCODINGS
from rnnslim.quantize.actquant import ActQuantConfig
from rnnslim.quantize.formats import (
    BaseFormat,
    FloatDtype,
    FloatFormat,
    IntFormat,
    KMeansFormat,
    TernaryFormat,
    fit_group_size,
    int_format,
)
from rnnslim.quantize.kmeans import KMeansInit
from rnnslim.quantize.lowbit import QuantEmbedding, QuantLinear, QuantRecurrent
from rnnslim.quantize.primitives import ClipMethod, Granularity, sqnr_db
from rnnslim.quantize.targets import DEFAULT_TARGETS, LayerFilter, Target, find_targets
from rnnslim.results import EditResult
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register, run


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    targets: tuple[Target, ...] = DEFAULT_TARGETS

    @model_validator(mode="after")
    def _check_format(self):
        self.weight_format()  # invalid combinations (bits=1, ...) fail when the config is made
        return self

    def weight_format(self) -> BaseFormat:
        raise NotImplementedError


class WeightOnly(_Config):
    """Affine integer weights; group_size=None gives one scale per output row (gate row)."""

    bits: int = Field(default=4, description="2..8")
    group_size: int | None = Field(default=64, ge=1)
    symmetric: bool = True
    clip: ClipMethod = ClipMethod.MINMAX
    scale_dtype: FloatDtype = FloatDtype.FP16
    entropy_coding: bool = False

    def weight_format(self) -> IntFormat:
        return int_format(self.bits, self.group_size, symmetric=self.symmetric, clip=self.clip,
                          scale_dtype=self.scale_dtype, entropy_coding=self.entropy_coding)


class Ternary(_Config):
    group_size: int | None = Field(default=64, ge=1)
    scale_dtype: FloatDtype = FloatDtype.FP16
    entropy_coding: bool = False

    def weight_format(self) -> TernaryFormat:
        gran = Granularity.CHANNEL if self.group_size is None else Granularity.GROUP
        return TernaryFormat(granularity=gran, group_size=self.group_size or 64, scale_dtype=self.scale_dtype,
                             entropy_coding=self.entropy_coding)


class KMeans(_Config):
    clusters: int = Field(default=16, ge=2, le=256)
    iters: int = Field(default=30, ge=1)
    init: KMeansInit = KMeansInit.LINEAR
    pin_zero: bool = True
    entropy_coding: bool = False

    def weight_format(self) -> KMeansFormat:
        return KMeansFormat(clusters=self.clusters, iters=self.iters, init=self.init, pin_zero=self.pin_zero,
                            entropy_coding=self.entropy_coding)


class HalfPrecision(_Config):
    """fp16 / bf16 weight storage; computation stays fp32 (weights are upcast once)."""

    dtype: FloatDtype = FloatDtype.BF16

    def weight_format(self) -> FloatFormat:
        return FloatFormat(dtype=self.dtype)


class QATStep(str, Enum):
    PREPARE = "prepare"
    CONVERT = "convert"


class QAT(BaseModel):
    """Quantization-aware training in two calls: prepare (swap in fake-quantized layers),
    train with rnnslim.train, convert (real quantized layers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    step: QATStep = QATStep.PREPARE
    weights: WeightOnly | Ternary | KMeans | HalfPrecision = WeightOnly()
    activations: ActQuantConfig | None = Field(default=None, description="also fake-quantize recurrent activations")


@dataclass
class LayerRecord:
    path: str
    kind: str
    format: str
    weight_sqnr_db: float  # of the quantized vs the float weight matrices (all of the layer)
    bits_per_weight: float  # stored bits per weight element, scales and codebooks included
    float_bytes: int  # fp32 bytes of the layer's tensors before
    stored_bytes: int  # bytes of the quantized layer's tensors (before entropy coding)
    note: str = ""  # e.g. the group size was fitted to the layer's columns

    def as_dict(self) -> dict:
        return asdict(self)


def _float_bytes(mod: nn.Module) -> int:
    return sum(t.numel() * 4 for t in mod.state_dict().values())


def quantize_layer(mod: nn.Module, fmt: BaseFormat) -> nn.Module:
    """The weight-only quantized replacement of one float layer."""
    if isinstance(mod, nn.RNNBase):
        return QuantRecurrent.from_float(mod, fmt)
    if isinstance(mod, nn.Embedding):
        return QuantEmbedding.from_float(mod, fmt)
    if isinstance(mod, nn.Linear):
        return QuantLinear.from_float(mod, fmt)
    raise TypeError(f"cannot quantize a {type(mod).__name__}; supported: LSTM, GRU, RNN, Embedding, Linear")


def _weights_of(mod: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in mod.named_parameters() if n.startswith("weight")}


SPARSE_CODES_MIN_ZEROS = 0.2  # a pruned weight at least this sparse gets its codes entropy coded anyway


def _pruned_weights(model: nn.Module, path: str, ref: dict[str, torch.Tensor], fmt: BaseFormat) -> list[str]:
    """Weight names of the layer at `path` that a pruning stage marked sparse and that are at
    least SPARSE_CODES_MIN_ZEROS zeros: quantized, their zeros become one repeated code, which
    dense packed codes would store at full width (a pruned + int3 layer as big as a dense one)."""
    from rnnslim.io.sparse_encoding import SPARSE_ENCODINGS

    enc = getattr(model, "tensor_encodings", None) or {}
    out = []
    for name, w in ref.items():
        marked = (enc.get(f"{path}.{name}", {}).get("encoding") in SPARSE_ENCODINGS  # float weight, pruned
                  or bool(enc.get(f"{path}.qweights.{name}.codes", {}).get("pruned")))  # a QAT layer continuing it
        if marked and "codes" in fmt.layout(w.shape) and float((w == 0).float().mean()) >= SPARSE_CODES_MIN_ZEROS:
            out.append(name)
    return out


def _mark_entropy_coding(model: nn.Module, path: str, qmod: nn.Module, fmt: BaseFormat, pruned: list[str]) -> None:
    """Mark the entropy-coded buffers of the quantized layer: every weight's when the format asks
    for it, and the codes of pruned weights (`_pruned_weights`) whatever the format says; those
    carry `pruned: true` (rnnslim.quantize.storage), the mark a later QAT stage holds the mask by."""
    names = fmt.entropy_coded()
    if not names and not pruned:
        return
    enc = dict(getattr(model, "tensor_encodings", None) or {})
    for wname in qmod.qweights:
        for b in names or (["codes"] if wname in pruned else []):
            mark = {"pruned": True} if wname in pruned and b == "codes" else {}
            enc[f"{path}.qweights.{wname}.{b}"] = {"encoding": "lzma", **mark}
    model.tensor_encodings = enc


def _record_history(model: nn.Module, entry: dict) -> None:
    hist = list(getattr(model, "history", None) or [])
    hist.append(entry)
    model.history = hist


def _refuse_transform_coded(model: nn.Module, found: list[tuple[str, nn.Module]]) -> None:
    """Quantizing weights stored as DCT coefficients / circulant blocks would silently replace
    that storage by dense codes of the rebuilt matrices: refuse with the way out."""
    enc = getattr(model, "tensor_encodings", None) or {}
    for path, mod in found:
        for name, _ in mod.named_parameters(prefix=path):
            if enc.get(name, {}).get("encoding") in TRANSFORM_ENCODINGS:
                raise ValueError(f"{name} is stored as {enc[name]['encoding']} (transform domain); quantizing it would "
                                 "replace that storage with dense codes. Quantize DCT coefficients with dct_sparsify's "
                                 "`bits`, or leave this layer out (targets / filter)")


def apply_format_(model: nn.Module, fmt: BaseFormat | None, targets=DEFAULT_TARGETS, filter: LayerFilter | None = None,
                  formats: dict[str, BaseFormat] | None = None) -> list[LayerRecord]:
    """Quantize the target layers in place with `fmt`, or each layer with its entry of
    `formats` (path -> format; layers not listed stay float). Returns per-layer records."""
    if fmt is None and formats is None:
        raise ValueError("apply_format_ needs a format or a per-layer formats mapping")
    found = find_targets(model, targets, filter)
    if formats is not None:
        unknown = set(formats) - {p for p, _ in found}
        if unknown:
            raise ValueError(f"formats name layers that are not float targets of this model: {sorted(unknown)}")
        found = [(p, m) for p, m in found if p in formats]
    if not found:
        raise ValueError(f"no float layers to quantize among targets {[Target(t).value for t in targets]} "
                         "(already quantized layers are not quantized again)")
    _refuse_transform_coded(model, found)
    with atomic_edit(model):  # a layer that fails to quantize leaves every layer as it was
        return _apply_formats(model, found, fmt, formats)


def _apply_formats(model: nn.Module, found, fmt: BaseFormat | None, formats: dict[str, BaseFormat] | None
                   ) -> list[LayerRecord]:
    records = []
    for path, mod in found:
        f = formats[path] if formats is not None else fmt
        f, note = fit_group_size(f, [int(w.shape[1]) for w in _weights_of(mod).values() if w.dim() == 2])
        q = quantize_layer(mod, f)
        ref, new = _weights_of(mod), {n: q.qweights[n].dequantize() for n in q.qweights}
        pruned = _pruned_weights(model, path, ref, f)
        flat_ref = torch.cat([ref[n].float().reshape(-1) for n in new])
        flat_new = torch.cat([new[n].reshape(-1) for n in new])
        records.append(LayerRecord(path, type(q).rnnslim_kind, f.describe(), round(sqnr_db(flat_ref, flat_new), 3),
                                   round(q.weight_bits(), 4), _float_bytes(mod), q.stored_bytes(), note))
        set_submodule(model, path, q.train(mod.training))
        _mark_entropy_coding(model, path, q, f, pruned)
    tie_quantized_(model)  # a tied embedding / decoder quantized alike keeps one copy of its codes
    _record_history(model, {"op": "quantize_weights", "layers": [r.as_dict() for r in records]})
    return records


@dataclass
class QuantizeResult(EditResult):
    """What quantize_ did: the common core (rnnslim.results) and, for weight-only, GPTQ and
    mixed precision, one LayerRecord per quantized layer (format, weight SQNR, bits, bytes)."""

    layers: list[LayerRecord] = field(default_factory=list)


@register(Family.QUANTIZE, WeightOnly, Ternary, KMeans, HalfPrecision)
def _quantize_weights(model: nn.Module, config: _Config, filter: LayerFilter | None = None) -> QuantizeResult:
    return QuantizeResult(layers=apply_format_(model, config.weight_format(), config.targets, filter))


@register(Family.QUANTIZE, QAT)
def _quantize_qat(model: nn.Module, config: QAT, filter: LayerFilter | None = None) -> QuantizeResult:
    from rnnslim.quantize.qat import QAT_KINDS, convert_qat_, prepare_qat_

    if config.step is QATStep.PREPARE:
        paths = prepare_qat_(model, config.weights.weight_format(), config.activations, config.weights.targets, filter)
    else:
        if filter is not None:
            raise ValueError("QAT(step='convert') converts every fake-quantized layer; filter applies to 'prepare'")
        # the trained weights per QAT layer (name -> tensor), for the pruned ones' codes below
        trained = {p: {n: w.detach() for n, w in m.named_parameters() if "." not in n and n.startswith("weight")}
                   for p, m in model.named_modules() if isinstance(m, QAT_KINDS)}
        paths = convert_qat_(model)
        for path in paths:  # LZMA-coded codes when the format asks, and always for pruned weights (as quantize_weights)
            mod = model.get_submodule(path)
            _mark_entropy_coding(model, path, mod, mod.fmt, _pruned_weights(model, path, trained[path], mod.fmt))
    _record_history(model, {"op": f"qat_{config.step.value}", "layers": paths,
                            "config": config.model_dump(mode="json")})
    return QuantizeResult()


def quantize_(model: nn.Module, config, filter: LayerFilter | None = None, calibration=None) -> nn.Module:
    """Apply a quantization config in place (see the module docstring) and return the model.

    The older form of rnnslim.quantize_ (rnnslim.verbs), which returns the QuantizeResult: same
    dispatch, same configs (Int8Config, GPTQ and MixedPrecision included, with `calibration`);
    kept because many callers chain on the model (`m = quantize_(m, cfg)`).
    """
    run(Family.QUANTIZE, model, config, filter=filter, calibration=calibration)
    return model
