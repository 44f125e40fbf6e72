"""Quantization-aware training: fake-quantized layers, prepare and convert.

    prepare_qat_(model, IntFormat(bits=4), ActQuantConfig())   # swap layers for QAT ones
    calibrate_activations_(model, task, task.calibration_batches(4))  # activation ranges (train()
                                                               # evaluates the model before its first step)
    load_best(model, train(model, task, TrainConfig(...)))     # rnnslim.train, unchanged
    convert_qat_(model)                                        # -> real quantized layers

A QAT layer keeps float parameters under torch's names and, every forward, replaces each
weight matrix by `w + (fmt.roundtrip(w) - w).detach()`: the forward sees exactly the
values the converted layer will store, the backward is the identity (straight-through
estimator). Weights-only QAT runs the fused kernel with those weights (torch._VF, no
stale nn.LSTM._flat_weights); with activation quantization the unfused loop adds fake
quantization of x, h and the gate pre-activations with running ranges (actquant.py).
convert_qat_ encodes the same weights with the same format, so a converted model gives
the QAT model's eval outputs.

A layer that is already weight-only quantized (GPTQ, quantize_weights) is trained on ITS
grid: the QAT layer starts from the dequantized weights and keeps the stored scales and zero
points fixed (frozen_grid.py), so step 0 is exactly the post-training model and training can
only refine its codes. The requested format must then match the layer's (bits, symmetry,
granularity, group size); a different one is refused rather than silently re-quantized.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.io.modules import set_submodule
from rnnslim.quantize.actquant import ActFakeQuant, ActQuantConfig
from rnnslim.quantize.formats import BaseFormat, fit_group_size, parse_format
from rnnslim.quantize.frozen_grid import FrozenGrid, same_grid_format
from rnnslim.quantize.functional import RecurrentShape, fused_forward, unfused_forward
from rnnslim.quantize.lowbit import (
    QuantEmbedding,
    QuantLinear,
    QuantRecurrent,
    recurrent_shape_of,
    shape_from_config,
    shape_to_config,
)
from rnnslim.quantize.qtensor import QTensor
from rnnslim.quantize.targets import DEFAULT_TARGETS, LayerFilter, Target, find_targets, quantized_target_of
from rnnslim.utils.progress import track


def fake_quant_weight(w: Tensor, fmt: BaseFormat, grid: FrozenGrid | None = None) -> Tensor:
    """STE fake quantization of one weight matrix with a storage format (on a frozen grid if given)."""
    with torch.no_grad():
        wq = (grid.roundtrip(w.detach()) if grid is not None else fmt.roundtrip(w.detach())).to(w.dtype)
    return w + (wq - w).detach()


def _stored(w: Tensor, fmt: BaseFormat, grid: FrozenGrid | None, name: str) -> QTensor:
    return grid.encode(w.detach(), fmt, name) if grid is not None else QTensor.from_float(w, fmt, name=name)


def kept_format(path: str, stored: BaseFormat, asked: BaseFormat) -> BaseFormat:
    """The format a quantized layer keeps under QAT (same_grid_format), or a clear refusal."""
    kept = same_grid_format(stored, asked)
    if kept is None:
        raise ValueError(f"prepare_qat_: {path} is already quantized as {stored.describe()}; QAT as "
                         f"{asked.describe()} would re-quantize it. QAT a quantized layer in its own integer "
                         "format (same bits, symmetry, granularity, group size) or start from the float model")
    return kept


class QATRecurrent(nn.Module):
    rnnslim_kind = "qat_recurrent"

    def __init__(self, shape: RecurrentShape, fmt: BaseFormat | dict, act: ActQuantConfig | dict | None = None,
                 frozen_grid: bool = False) -> None:
        super().__init__()
        self.shape = shape
        self.fmt = parse_format(fmt)
        self.act_cfg = ActQuantConfig.model_validate(act) if isinstance(act, dict) else act
        for n, s in shape.weight_shapes().items():
            self.register_parameter(n, nn.Parameter(torch.zeros(s)))
        # one FrozenGrid per weight matrix when continuing from a quantized layer, else None
        self.grids = (nn.ModuleDict({n: FrozenGrid(self.fmt, s) for n, s in shape.weight_shapes().items()
                                     if n.startswith("weight")}) if frozen_grid else None)
        self.act = (nn.ModuleList([ActFakeQuant(shape.cell, self.act_cfg) for _ in range(shape.num_layers)])
                    if self.act_cfg is not None else None)

    @classmethod
    def from_float(cls, module: nn.Module, fmt: BaseFormat, act: ActQuantConfig | None = None,
                   path: str = "rnn") -> QATRecurrent:
        """From a float torch layer, or from a QuantRecurrent: then on its frozen grid (module docstring)."""
        if isinstance(module, QuantRecurrent):
            q = cls(module.shape, kept_format(path, module.fmt, fmt), act, frozen_grid=True)
            for n, qt in module.qweights.items():
                q.grids[n] = FrozenGrid.of(qt)
            module = module.to_float()
        else:
            q = cls(recurrent_shape_of(module), fmt, act)
        with torch.no_grad():
            for n, p in module.named_parameters():
                getattr(q, n).copy_(p.float())
        return q.to(next(module.parameters()).device)

    def flat_weights(self) -> list[Tensor]:
        return [fake_quant_weight(getattr(self, n), self.fmt, self.grids[n] if self.grids is not None else None)
                if n.startswith("weight") else getattr(self, n) for n in self.shape.weight_names()]

    def forward(self, x: Tensor, state=None):
        if self.act is None:
            return fused_forward(self.shape, self.flat_weights(), x, state, self.training)
        return unfused_forward(self.shape, self.flat_weights(), x, state, self.training, act=list(self.act))

    def convert(self) -> QuantRecurrent:
        params = {n: p for n, p in self.named_parameters() if "." not in n}
        if self.grids is None:
            q = QuantRecurrent.from_weights(self.shape, params, self.fmt, self.act_cfg)
        else:
            q = QuantRecurrent(self.shape, self.fmt, self.act_cfg)
            q.anchor_like_(params[self.shape.weight_names()[0]])
            for n, p in params.items():
                if n.startswith("weight"):
                    q.qweights[n] = _stored(p, self.fmt, self.grids[n], n)
                else:
                    getattr(q, n).data.copy_(p.detach().float())
            q = q.to(p.device)
        if self.act is not None:
            q.act.load_state_dict(self.act.state_dict())
        return q

    def rnnslim_config(self) -> dict:
        return {"shape": shape_to_config(self.shape), "format": self.fmt.model_dump(mode="json"),
                "act": self.act_cfg.model_dump(mode="json") if self.act_cfg is not None else None,
                "frozen_grid": self.grids is not None}

    @classmethod
    def from_config(cls, cfg: dict) -> QATRecurrent:
        return cls(shape_from_config(cfg["shape"]), cfg["format"], cfg.get("act"), cfg.get("frozen_grid", False))

    def extra_repr(self) -> str:
        return f"{self.shape.cell.value}, {self.fmt.describe()}" + (", act-quant" if self.act is not None else "")


class QATEmbedding(nn.Embedding):
    rnnslim_kind = "qat_embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int, fmt: BaseFormat | dict, padding_idx: int | None = None,
                 frozen_grid: bool = False):
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.fmt = parse_format(fmt)
        self.grid = FrozenGrid(self.fmt, (num_embeddings, embedding_dim)) if frozen_grid else None

    def forward(self, x: Tensor) -> Tensor:
        return F.embedding(x, fake_quant_weight(self.weight, self.fmt, self.grid), self.padding_idx)

    def convert(self) -> QuantEmbedding:
        q = QuantEmbedding(self.num_embeddings, self.embedding_dim, self.fmt, self.padding_idx)
        q.qweights["weight"] = _stored(self.weight, self.fmt, self.grid, "embedding weight")
        return q

    def rnnslim_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "format": self.fmt.model_dump(mode="json"),
                "frozen_grid": self.grid is not None}

    @classmethod
    def from_config(cls, cfg: dict) -> QATEmbedding:
        return cls(cfg["num_embeddings"], cfg["embedding_dim"], cfg["format"], cfg.get("padding_idx"),
                   cfg.get("frozen_grid", False))


class QATLinear(nn.Linear):
    rnnslim_kind = "qat_linear"

    def __init__(self, in_features: int, out_features: int, bias: bool, fmt: BaseFormat | dict,
                 frozen_grid: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.fmt = parse_format(fmt)
        self.grid = FrozenGrid(self.fmt, (out_features, in_features)) if frozen_grid else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, fake_quant_weight(self.weight, self.fmt, self.grid), self.bias)

    def convert(self) -> QuantLinear:
        q = QuantLinear(self.in_features, self.out_features, self.bias is not None, self.fmt)
        q.qweights["weight"] = _stored(self.weight, self.fmt, self.grid, "linear weight")
        if self.bias is not None:
            q.bias.data.copy_(self.bias.detach())
        return q

    def rnnslim_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "format": self.fmt.model_dump(mode="json"), "frozen_grid": self.grid is not None}

    @classmethod
    def from_config(cls, cfg: dict) -> QATLinear:
        return cls(cfg["in_features"], cfg["out_features"], cfg["bias"], cfg["format"], cfg.get("frozen_grid", False))


QAT_KINDS = (QATRecurrent, QATEmbedding, QATLinear)


def _qat_module(path: str, mod: nn.Module, fmt: BaseFormat, act: ActQuantConfig | None) -> nn.Module:
    if isinstance(mod, (nn.RNNBase, QuantRecurrent)):
        return QATRecurrent.from_float(mod, fmt, act, path)
    frozen = isinstance(mod, (QuantEmbedding, QuantLinear))
    if frozen:  # continue on the quantized layer's grid
        fmt = kept_format(path, mod.fmt, fmt)
    if isinstance(mod, (nn.Embedding, QuantEmbedding)):
        q = QATEmbedding(mod.num_embeddings, mod.embedding_dim, fmt, mod.padding_idx, frozen)
    else:
        q = QATLinear(mod.in_features, mod.out_features, mod.bias is not None, fmt, frozen)
    with torch.no_grad():
        q.weight.copy_(mod.weight.float())  # a quantized layer's `weight` reads its dequantized codes
        if getattr(mod, "bias", None) is not None:
            q.bias.copy_(mod.bias.float())
        if frozen:
            q.grid = FrozenGrid.of(mod.qweights["weight"])
    return q.to(mod.weight.device)


def _qat_targets(model: nn.Module, targets, filter: LayerFilter | None) -> list[tuple[str, nn.Module]]:
    """Float target layers and weight-only quantized ones (QuantRecurrent/Embedding/Linear), model order."""
    wanted = {Target(t) for t in targets}
    floats = {p for p, _ in find_targets(model, targets, filter)}
    return [(p, m) for p, m in model.named_modules()
            if p in floats or (quantized_target_of(p, m) in wanted and (filter is None or filter(p, m)))]


def prepare_qat_(model: nn.Module, fmt: BaseFormat, act: ActQuantConfig | None = None, targets=DEFAULT_TARGETS,
                 filter: LayerFilter | None = None) -> list[str]:
    """Swap the target layers for QAT layers in place; returns their paths. Float layers take
    `fmt`; weight-only quantized layers keep their own grid (module docstring). Activation
    quantization applies to recurrent layers only."""
    fmt = parse_format(fmt)
    found = _qat_targets(model, targets, filter)
    if not found:
        raise ValueError("prepare_qat_: the model has no float or weight-only quantized layers among the targets "
                         f"{[getattr(t, 'value', t) for t in targets]}")
    swaps = []
    for path, mod in found:  # a group size the layer's columns do not take is fitted, as quantize_ does
        weights = mod.flat_weights() if isinstance(mod, QuantRecurrent) else [
            p for n, p in mod.named_parameters() if n.startswith("weight")] or [mod.weight]
        cols = [int(w.shape[1]) for w in weights if w.dim() == 2]
        swaps.append((path, _qat_module(path, mod, fit_group_size(fmt, cols)[0], act)))  # all built before any swap
    for path, q in swaps:
        set_submodule(model, path, q)
    return [p for p, _ in swaps]


def convert_qat_(model: nn.Module) -> list[str]:
    """Replace every QAT layer by its real quantized layer in place; returns their paths."""
    found = [(p, m) for p, m in model.named_modules() if isinstance(m, QAT_KINDS)]
    if not found:
        raise ValueError("convert_qat_: the model has no QAT layers (run prepare_qat_ first)")
    for path, mod in found:
        set_submodule(model, path, mod.convert().to(next(mod.parameters()).device).train(mod.training))
    return [p for p, _ in found]


@torch.no_grad()
def calibrate_activations_(model: nn.Module, task, batches) -> int:
    """Observe activation ranges of every ActFakeQuant on `batches` (the rest of the model in
    eval mode, no dropout, no gradients); returns how many observers were updated."""
    observers = [m for m in model.modules() if isinstance(m, ActFakeQuant)]
    if not observers:
        return 0
    was = model.training
    model.eval()
    for o in observers:
        o.train()
    state = None
    device = next(iter(model.state_dict().values())).device
    for b in track(batches, desc="calibrate activations"):
        b = b.to(device)
        _, new = model(b.inputs, state if task.stateful else None)
        state = new if task.stateful else None
    model.train(was)
    return len(observers)
