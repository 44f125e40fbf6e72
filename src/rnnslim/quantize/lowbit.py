"""Weight-only quantized layers: stored small, computed in float.

    QuantRecurrent  replaces a torch.nn.LSTM / GRU / RNN (any layers, directions, proj_size)
    QuantEmbedding  replaces torch.nn.Embedding
    QuantLinear     replaces torch.nn.Linear (decoder, input projection)

Each weight matrix is a QTensor (codes + scales [+ zero points | codebook]) in any
WeightFormat; biases stay float32 parameters. Forward dequantizes the weights once
(cached until the buffers change) and runs the fused float kernel, so speed is that of
fp32 while the model file is small. Same forward contract and state shapes as the torch
module replaced. QuantRecurrent may also carry activation fake quantization (ranges
learnt by QAT, see actquant.py); it then runs the unfused per-step loop.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnslim.quantize.actquant import ActFakeQuant, ActQuantConfig
from rnnslim.quantize.anchor import DtypeAnchored
from rnnslim.quantize.formats import BaseFormat, parse_format
from rnnslim.quantize.functional import RecurrentShape, fused_forward, unfused_forward
from rnnslim.quantize.qtensor import QTensor
from rnnslim.recurrent.gates import CellType, as_cell, cell_of_module


def recurrent_shape_of(module: nn.RNNBase) -> RecurrentShape:
    return RecurrentShape(cell=cell_of_module(module), input_size=module.input_size, hidden_size=module.hidden_size,
                          num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                          bidirectional=module.bidirectional, proj_size=getattr(module, "proj_size", 0),
                          dropout=float(module.dropout))


def shape_to_config(shape: RecurrentShape) -> dict:
    return {**asdict(shape), "cell": shape.cell.value}


def shape_from_config(cfg: dict) -> RecurrentShape:
    return RecurrentShape(**{**cfg, "cell": as_cell(cfg["cell"])})


class _QuantWeights(DtypeAnchored):
    """Mixin logic: a ModuleDict `qweights` of QTensors, readable as attributes."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            qw = self.__dict__.get("_modules", {}).get("qweights")
            if qw is not None and name in qw:
                return qw[name].dequantize()
            raise

    def stored_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())

    def weight_bits(self) -> float:
        """Stored bits per quantized weight (codes + scales + codebooks; biases excluded)."""
        qs = list(self.qweights.values())
        return 8 * sum(q.stored_bytes() for q in qs) / sum(torch.Size(q.shape).numel() for q in qs)


class QuantRecurrent(_QuantWeights):
    rnnslim_kind = "weight_only_recurrent"

    def __init__(self, shape: RecurrentShape, fmt: BaseFormat | dict, act: ActQuantConfig | dict | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.fmt = parse_format(fmt)
        self.act_cfg = ActQuantConfig.model_validate(act) if isinstance(act, dict) else act
        shapes = shape.weight_shapes()
        self.qweights = nn.ModuleDict({n: QTensor(self.fmt, s, n) for n, s in shapes.items() if n.startswith("weight")})
        for n, s in shapes.items():
            if n.startswith("bias"):
                self.register_parameter(n, nn.Parameter(torch.zeros(s)))
        self.act = (nn.ModuleList([ActFakeQuant(shape.cell, self.act_cfg) for _ in range(shape.num_layers)])
                    if self.act_cfg is not None else None)

    @classmethod
    def from_float(cls, module: nn.RNNBase, fmt: BaseFormat, act: ActQuantConfig | None = None) -> QuantRecurrent:
        return cls.from_weights(recurrent_shape_of(module), dict(module.named_parameters()), fmt, act)

    @classmethod
    def from_weights(cls, shape: RecurrentShape, params: dict[str, Tensor], fmt: BaseFormat,
                     act: ActQuantConfig | None = None) -> QuantRecurrent:
        """Quantize float weights given by torch parameter name (weight_ih_l0, bias_ih_l0, ...)."""
        q = cls(shape, fmt, act)
        q.anchor_like_(params[shape.weight_names()[0]])
        for n in shape.weight_names():
            if n.startswith("weight"):
                q.qweights[n] = QTensor.from_float(params[n], q.fmt, name=n)
            else:
                getattr(q, n).data.copy_(params[n].detach().float())
        return q.to(params[shape.weight_names()[0]].device)

    # torch-like attributes for code that inspects layers
    input_size = property(lambda self: self.shape.input_size)
    hidden_size = property(lambda self: self.shape.hidden_size)
    num_layers = property(lambda self: self.shape.num_layers)
    bidirectional = property(lambda self: self.shape.bidirectional)
    proj_size = property(lambda self: self.shape.proj_size)
    batch_first = property(lambda self: self.shape.batch_first)
    bias = property(lambda self: self.shape.bias)
    cell = property(lambda self: self.shape.cell)

    def flat_weights(self) -> list[Tensor]:
        """Float weights in torch's flat order (dequantized, cached)."""
        return [self.qweights[n].dequantize() if n in self.qweights else getattr(self, n)
                for n in self.shape.weight_names()]

    def forward(self, x: Tensor, state=None):
        if self.act is None:
            return fused_forward(self.shape, self.flat_weights(), x, state, self.training)
        return unfused_forward(self.shape, self.flat_weights(), x, state, self.training, act=list(self.act))

    def to_float(self) -> nn.RNNBase:
        """An equivalent torch module holding the dequantized weights (export, measurement)."""
        s = self.shape
        kw = {"input_size": s.input_size, "hidden_size": s.hidden_size, "num_layers": s.num_layers, "bias": s.bias,
              "batch_first": s.batch_first, "dropout": s.dropout, "bidirectional": s.bidirectional}
        if s.cell is CellType.LSTM:
            mod = nn.LSTM(proj_size=s.proj_size, **kw)
        elif s.cell is CellType.GRU:
            mod = nn.GRU(**kw)
        else:
            mod = nn.RNN(nonlinearity="relu" if s.cell is CellType.RNN_RELU else "tanh", **kw)
        with torch.no_grad():
            for n, w in zip(s.weight_names(), self.flat_weights()):
                getattr(mod, n).copy_(w)
        return mod

    def rnnslim_config(self) -> dict:
        return {"shape": shape_to_config(self.shape), "format": self.fmt.model_dump(mode="json"),
                "act": self.act_cfg.model_dump(mode="json") if self.act_cfg is not None else None}

    @classmethod
    def from_config(cls, cfg: dict) -> QuantRecurrent:
        return cls(shape_from_config(cfg["shape"]), cfg["format"], cfg.get("act"))

    def extra_repr(self) -> str:
        s = self.shape
        return (f"{s.cell.value}, {s.input_size} -> {s.hidden_size}" + (f"p{s.proj_size}" if s.proj_size else "")
                + f", layers={s.num_layers}, bidirectional={s.bidirectional}, {self.fmt.describe()}"
                + (", act-quant" if self.act is not None else ""))


class QuantEmbedding(_QuantWeights):
    rnnslim_kind = "weight_only_embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int, fmt: BaseFormat | dict, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.fmt = parse_format(fmt)
        self.qweights = nn.ModuleDict({"weight": QTensor(self.fmt, (num_embeddings, embedding_dim))})

    @classmethod
    def from_float(cls, module: nn.Embedding, fmt: BaseFormat) -> QuantEmbedding:
        if module.max_norm is not None or module.sparse:
            raise ValueError("quantized embeddings do not support max_norm or sparse gradients")
        q = cls(module.num_embeddings, module.embedding_dim, fmt, module.padding_idx)
        q.anchor_like_(module.weight)
        q.qweights["weight"] = QTensor.from_float(module.weight, q.fmt, name="embedding weight")
        return q

    def forward(self, x: Tensor) -> Tensor:
        return F.embedding(x, self.qweights["weight"].dequantize(), self.padding_idx)

    def rnnslim_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "format": self.fmt.model_dump(mode="json")}

    @classmethod
    def from_config(cls, cfg: dict) -> QuantEmbedding:
        return cls(cfg["num_embeddings"], cfg["embedding_dim"], cfg["format"], cfg.get("padding_idx"))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {self.fmt.describe()}"


class QuantLinear(_QuantWeights):
    rnnslim_kind = "weight_only_linear"

    def __init__(self, in_features: int, out_features: int, bias: bool, fmt: BaseFormat | dict) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.fmt = parse_format(fmt)
        self.qweights = nn.ModuleDict({"weight": QTensor(self.fmt, (out_features, in_features))})
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_float(cls, module: nn.Linear, fmt: BaseFormat) -> QuantLinear:
        q = cls(module.in_features, module.out_features, module.bias is not None, fmt)
        q.anchor_like_(module.weight)
        q.qweights["weight"] = QTensor.from_float(module.weight, q.fmt, name="linear weight")
        if module.bias is not None:
            q.bias.data.copy_(module.bias.detach().float())
        return q.to(module.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        w = self.qweights["weight"].dequantize().to(x.dtype)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def rnnslim_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "format": self.fmt.model_dump(mode="json")}

    @classmethod
    def from_config(cls, cfg: dict) -> QuantLinear:
        return cls(cfg["in_features"], cfg["out_features"], cfg["bias"], cfg["format"])

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, {self.fmt.describe()}"
