"""Error-compensating weight quantization (GPTQ for recurrent nets).

    quantize_gptq_(model, GPTQ(bits=2, group_size=64), calibration=task)

Each float recurrent / decoder weight is rounded to a group-wise integer grid one input
column at a time (obs.py), the not-yet-rounded columns absorbing the error as OBS says,
against the second moment of the weight's real inputs on calibration batches (x_t,
h_{t-1}, o*tanh(c), decoder features), layer by layer in forward order. A group's scale
(and zero point) is chosen when the walk reaches its first column, from the weights as
updated so far, with the format's rule (min-max or MSE clip; scales rounded to their
storage dtype). The result is stored exactly like `quantize_weights` (same module kinds,
same bytes): only the integer codes differ, so everything downstream works unchanged.

Weights that are already exactly zero (a pruned model) stay zero and the kept weights
compensate for them too: prune_obs_ followed by quantize_gptq_ is joint sparse +
quantized reconstruction. Embeddings (one-hot inputs: nothing to compensate) are rounded
as `quantize_weights` would.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rnnslim.io.modules import set_submodule
from rnnslim.prune.importance import as_calibration
from rnnslim.quantize.api import LayerRecord, QuantizeResult, _weights_of, apply_format_
from rnnslim.quantize.formats import FloatDtype, IntFormat, fit_group_size, int_format
from rnnslim.quantize.primitives import ClipMethod, Granularity, sqnr_db
from rnnslim.quantize.targets import Target, find_targets
from rnnslim.recurrent.inputs import shared_parameters
from rnnslim.reconstruct.obs import ColumnRule, GridQuantizer, zeros_kept
from rnnslim.reconstruct.sequential import Outcome, reconstruct_weights_
from rnnslim.verbs import Family, register


class GPTQ(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    bits: int = Field(default=4, ge=2, le=8)
    group_size: int | None = Field(default=64, ge=1, description="None: one scale per output row")
    symmetric: bool = True
    clip: ClipMethod = ClipMethod.MSE
    scale_dtype: FloatDtype = FloatDtype.FP16
    entropy_coding: bool = False
    targets: tuple[Target, ...] = (Target.RNN, Target.EMBEDDING, Target.DECODER, Target.INPUT_PROJ)
    calibration_batches: int = Field(default=32, ge=1, description="batches of 16 x 64 tokens")
    damp: float = Field(default=0.01, gt=0)
    block: int = Field(default=128, ge=1)
    sequential: bool = True

    def weight_format(self) -> IntFormat:
        return int_format(self.bits, self.group_size, symmetric=self.symmetric, clip=self.clip,
                          scale_dtype=self.scale_dtype, entropy_coding=self.entropy_coding)


def _matrix_weights(model: nn.Module, targets) -> list[str]:
    """Parameter names GPTQ walks: every weight of the recurrent and Linear targets, except
    tied ones (a decoder sharing the embedding: rounded to nearest like the embedding)."""
    names, tied = [], shared_parameters(model)
    for path, mod in find_targets(model, targets):
        if isinstance(mod, nn.RNNBase):
            names += [f"{path}.{n}" for n, _ in mod.named_parameters() if n.startswith("weight")]
        elif isinstance(mod, nn.Linear):
            names.append(f"{path}.weight")
    return [n for n in names if n not in tied]


def _fitted_formats(model: nn.Module, fmt: IntFormat, targets, names: list[str]) -> dict[str, IntFormat]:
    """{weight name: its layer's format}, the group size fitted per layer exactly as
    apply_format_ fits it (a layer whose column count the group does not divide, e.g. a
    65-wide folded input, gets the largest divisor or one scale per row), so the walk's grid
    is the one the stored codes use."""
    out = {}
    for path, mod in find_targets(model, targets):
        fitted, _ = fit_group_size(fmt, [int(w.shape[1]) for w in _weights_of(mod).values() if w.dim() == 2])
        out.update({n: fitted for n in names if n.startswith(path + ".")})
    return out


def _rule_for(formats: dict[str, IntFormat]):
    def rule(name: str, w: Tensor, H: Tensor) -> ColumnRule:
        fmt = formats[name]
        spec = fmt.spec
        group = spec.group_size if spec.granularity is Granularity.GROUP else None  # None: one grid per row
        if group and w.shape[1] % group:
            raise ValueError(f"{name}: group_size {group} does not divide its {w.shape[1]} input columns")
        return ColumnRule(fixed_mask=zeros_kept(w), quantizer=GridQuantizer(fmt.qparams, spec.qmin, spec.qmax, group))

    return rule


def _levels(o: Outcome, new: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(levels (rows, cols) int32, scale, zero point in the format's layout) of a walked weight."""
    qz = o.rule.quantizer
    s, z = torch.cat(qz.scales, 1), torch.cat(qz.zeros, 1)  # (rows, groups)
    g = new.shape[1] // s.shape[1]
    lv = torch.clamp(torch.round(new / s.repeat_interleave(g, 1)) + z.repeat_interleave(g, 1), qz.qmin, qz.qmax)
    if s.shape[1] == 1 and qz.group_size is None:
        s, z = s.reshape(-1), z.reshape(-1)
    return lv.to(torch.int32), s, z.to(torch.int32)


def _install_codes(model: nn.Module, fmt: IntFormat, names: list[str], outcomes: dict[str, Outcome],
                   walked: dict[str, Tensor]) -> None:
    """Overwrite the quantized layers' codes/scales with the walk's (exactly its grid)."""
    qtensors = {f"{path}.{key}": qt for path, mod in model.named_modules()
                for key, qt in (getattr(mod, "qweights", None) or {}).items()}
    for n in names:
        qt = qtensors[n]
        w = walked[n]
        lv, s, z = _levels(outcomes[n], w)
        for k, t in fmt.encode_levels(lv, s, z).items():
            getattr(qt, k).copy_(t)
        err = (qt.dequantize().cpu().reshape(w.shape) - w).abs().max()
        if err > 1e-5 * float(w.abs().max().clamp_min(1e-12)):
            raise RuntimeError(f"{n}: stored GPTQ codes differ from the walked weights by {float(err):.3g}")


def _sqnr_vs(records: list[LayerRecord], model: nn.Module, original: dict[str, Tensor]) -> list[LayerRecord]:
    """Records whose weight SQNR compares the stored weights with the float ones before GPTQ."""
    out = []
    for r in records:
        qw = model.get_submodule(r.path).qweights
        keys = [k for k in qw if f"{r.path}.{k}" in original]
        if keys:
            ref = torch.cat([original[f"{r.path}.{k}"].float().reshape(-1).cpu() for k in keys])
            new = torch.cat([qw[k].dequantize().reshape(-1).cpu() for k in keys])
            r = replace(r, weight_sqnr_db=round(sqnr_db(ref, new), 3))
        out.append(r)
    return out


def quantize_gptq_(model: nn.Module, cfg: GPTQ, calibration, progress: bool = False) -> list[LayerRecord]:
    """Quantize `model` in place with GPTQ (see the module doc); returns per-layer records
    like apply_format_. Atomic: on any failure the model is exactly as it was."""
    fmt = cfg.weight_format()
    names = _matrix_weights(model, cfg.targets)
    if not names:
        raise ValueError(f"no float recurrent or Linear layers among targets {[t.value for t in cfg.targets]}")
    cal = as_calibration(calibration, cfg.calibration_batches)
    layers = find_targets(model, cfg.targets)  # the float modules, kept for a rollback
    attrs = {a: copy.deepcopy(getattr(model, a)) for a in ("history", "tensor_encodings") if hasattr(model, a)}
    original = {n: model.get_parameter(n).detach().clone() for n in names}
    try:
        rule = _rule_for(_fitted_formats(model, fmt, cfg.targets, names))
        outcomes = reconstruct_weights_(model, names, cal, rule, damp=cfg.damp, block=cfg.block,
                                        sequential=cfg.sequential, progress=progress, desc="gptq")
        walked = {n: model.get_parameter(n).detach().float().reshape(original[n].shape[0], -1).cpu() for n in names}
        records = apply_format_(model, fmt, cfg.targets)  # module swap; codes replaced next
        _install_codes(model, fmt, names, outcomes, walked)
    except BaseException:
        with torch.no_grad():
            for path, mod in layers:
                set_submodule(model, path, mod)
            for n, w in original.items():
                model.get_parameter(n).copy_(w)
        for a, v in attrs.items():
            setattr(model, a, v)
        raise
    records = _sqnr_vs(records, model, original)
    model.history[-1].update({"op": "quantize_gptq", "layers": [r.as_dict() for r in records],
                              "gptq": {"damp": cfg.damp, "calibration_batches": cfg.calibration_batches,
                                       "relative_output_error": {n: round(o.rel_error, 6)
                                                                 for n, o in outcomes.items()}}})
    return records


@register(Family.QUANTIZE, GPTQ)
def _quantize_gptq(model: nn.Module, cfg: GPTQ, calibration) -> QuantizeResult:
    """rnnslim.quantize_(model, GPTQ(...), calibration=task)."""
    return QuantizeResult(layers=quantize_gptq_(model, cfg, calibration))
