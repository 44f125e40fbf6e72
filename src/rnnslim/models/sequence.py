"""The reference model of every built-in task.

    x ids (T, B)        -> embedding [V, E]          (LMs)
    x features (T, B, F) -> input_proj Linear [E, F]  (classify / forecast; or none)
      [windows of k frames (T', B, k*F) -> input_proj Linear [E, k*F]: a Conv1d front end]
      [-> input activation (relu / tanh / sigmoid / gelu / hardtanh)]
      -> dropout -> rnn: RecurrentStack (per-layer hidden sizes) -> dropout
      [-> decoder_proj Linear [r, rnn.output_size], no bias   (decoder_rank r > 0: low-rank head)]
      -> decoder Linear [O, rnn.output_size or r]
         readout "all": logits per step (T, B, O); "last"/"mean": one vector (B, O)

Tensors are named like ../shared/models (embedding.weight, decoder.weight, ...); the
recurrent tensors live under rnn.layers.{k}.* (one single-layer torch module per layer).
Time-major throughout; tasks convert their batches.

Low-rank models (rnnslim.lowrank) stay plain SequenceModels: a layer's `input_rank` puts a
bias-free bottleneck Linear (rnn.bottlenecks.{k}) in front of it, `proj_size` makes an LSTM
layer an LSTMP, `decoder_rank` splits the head in two. These fields are left out of the
stored spec while they are 0, so other models' manifests are as before.

`output_activation` (log_softmax / softmax; default none, then left out of the stored spec)
records an activation the model's user applies over the output features (a captured module's
final F.log_softmax, rnnslim.capture). `SequenceModel.forward` always returns the logits, as the
integer kernel, the C export and the runtime do; whoever runs the model where the user's outputs
are expected applies `apply_output_activation` after it (rnnslim.capture.user_view does).

A CRNN front end (rnnslim.capture of a Conv1d with kernel k > 1) is `input_window` k with
`input_padding` p: the input projection reads windows of k frames (models/window.py; zero
padding p at both ends, T' = T + 2p - k + 1 steps) and its weight is the Conv1d's laid out
frame-major. `input_activation` is an elementwise activation after the input projection.
Both need input kind "linear" and are left out of the stored spec at their defaults.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator
from torch import Tensor, nn

from rnnslim.models.window import unfold_windows
from rnnslim.recurrent.gates import CellType
from rnnslim.recurrent.stack import LayerSpec, RecurrentStack


class InputKind(str, Enum):
    EMBEDDING = "embedding"  # integer tokens
    LINEAR = "linear"  # float features through a Linear projection
    IDENTITY = "identity"  # float features straight into the first recurrent layer


class Readout(str, Enum):
    ALL = "all"  # one output per time step (language models)
    LAST = "last"  # output of the last time step (classification, forecasting)
    MEAN = "mean"  # mean over time


class OutputActivation(str, Enum):
    NONE = "none"  # logits
    LOG_SOFTMAX = "log_softmax"  # over the output features, applied by the caller after the logits
    SOFTMAX = "softmax"


class InputActivation(str, Enum):
    NONE = "none"
    RELU = "relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    GELU = "gelu"  # the exact (erf) form
    HARDTANH = "hardtanh"  # clamp to [-1, 1]


_INPUT_ACTIVATIONS = {InputActivation.RELU: nn.ReLU, InputActivation.TANH: nn.Tanh, InputActivation.SIGMOID: nn.Sigmoid,
                      InputActivation.GELU: nn.GELU, InputActivation.HARDTANH: nn.Hardtanh}


def input_activation_module(kind: InputActivation | str) -> nn.Module:
    """The torch module of an input activation (nn.Identity for none)."""
    kind = InputActivation(kind)
    return _INPUT_ACTIVATIONS[kind]() if kind is not InputActivation.NONE else nn.Identity()


def apply_input_activation(x: Tensor, kind: InputActivation | str) -> Tensor:
    """The activation on any tensor (float64 included: the integer lookup tables are built with it)."""
    return input_activation_module(kind)(x)


class LayerShape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    hidden_size: int = Field(ge=1)
    proj_size: int = Field(default=0, ge=0)
    bidirectional: bool = False
    input_rank: int = Field(default=0, ge=0, description="width of a bias-free bottleneck Linear in front of the "
                            "layer (low-rank W_ih); 0: none")

    @model_serializer(mode="wrap")
    def _drop_zero_rank(self, handler):
        return _without_zero(handler(self), "input_rank")

    def to_spec(self) -> LayerSpec:
        return LayerSpec(self.hidden_size, self.proj_size, self.bidirectional, self.input_rank)


def _without_zero(data, key: str, default=0):
    """A dumped spec without `key` while it is `default` (manifests of models without it stay unchanged)."""
    if isinstance(data, dict) and key in data and data[key] == default:
        data = {k: v for k, v in data.items() if k != key}
    return data


class ModelSpec(BaseModel):
    """Everything needed to rebuild a SequenceModel (stored in the model manifest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cell: CellType
    input_kind: InputKind
    input_size: int = Field(ge=1, description="vocabulary size or number of input features")
    embed_size: int = Field(ge=1, description="embedding / projection width fed to the first recurrent layer")
    layers: list[LayerShape] = Field(min_length=1)
    output_size: int = Field(ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    readout: Readout = Readout.ALL
    tie_weights: bool = False
    decoder_rank: int = Field(default=0, ge=0, description="low-rank head: decoder_proj Linear (rank r, no bias) "
                              "before the decoder; 0: one Linear")
    output_activation: OutputActivation = Field(
        default=OutputActivation.NONE, description="activation the caller applies over the output features "
        "after the logits (forward, the integer kernel and the C export return logits)")
    input_window: int = Field(default=1, ge=1, description="frames per window of a Conv1d front end (its "
                              "kernel size); 1: the input projection reads one frame")
    input_padding: int = Field(default=0, ge=0, description="zero frames at both ends of the input (the Conv1d's "
                               "padding)")
    input_activation: InputActivation = Field(default=InputActivation.NONE, description="elementwise activation "
                                              "after the input projection")

    @model_serializer(mode="wrap")
    def _drop_zero_rank(self, handler):
        data = _without_zero(handler(self), "decoder_rank")
        data = _without_zero(data, "output_activation", OutputActivation.NONE)
        data = _without_zero(data, "input_window", 1)
        data = _without_zero(data, "input_padding", 0)
        return _without_zero(data, "input_activation", InputActivation.NONE)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.input_kind is InputKind.IDENTITY and self.embed_size != self.input_size:
            raise ValueError("input_kind 'identity' needs embed_size == input_size")
        front = self.input_window > 1 or self.input_padding or self.input_activation is not InputActivation.NONE
        if front and self.input_kind is not InputKind.LINEAR:
            raise ValueError("input_window / input_padding / input_activation need input_kind 'linear' (they act on "
                             "the input projection)")
        if self.tie_weights:
            if self.decoder_rank:
                raise ValueError("tie_weights needs a one-Linear head (decoder_rank 0)")
            if self.input_kind is not InputKind.EMBEDDING:
                raise ValueError("tie_weights needs an embedding input")
            if self.layers[-1].to_spec().output_size != self.embed_size or self.output_size != self.input_size:
                raise ValueError("tie_weights needs last layer output size == embed_size and output_size == vocab size")
        return self

    def with_layers(self, layers: list[LayerSpec]) -> ModelSpec:
        shapes = [LayerShape(hidden_size=s.hidden_size, proj_size=s.proj_size, bidirectional=s.bidirectional,
                             input_rank=s.input_rank) for s in layers]
        return self.model_copy(update={"layers": shapes})

    @property
    def layer_specs(self) -> list[LayerSpec]:
        return [layer.to_spec() for layer in self.layers]


class SequenceModel(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.input_kind is InputKind.EMBEDDING:
            self.embedding = nn.Embedding(spec.input_size, spec.embed_size)
        elif spec.input_kind is InputKind.LINEAR:
            self.input_proj = nn.Linear(spec.input_size * spec.input_window, spec.embed_size)
            if spec.input_activation is not InputActivation.NONE:
                self.input_act = input_activation_module(spec.input_activation)
        self.drop = nn.Dropout(spec.dropout)
        self.rnn = RecurrentStack(spec.cell, spec.embed_size, spec.layer_specs, dropout=spec.dropout)
        if spec.decoder_rank:
            self.decoder_proj = nn.Linear(self.rnn.output_size, spec.decoder_rank, bias=False)
        self.decoder = nn.Linear(spec.decoder_rank or self.rnn.output_size, spec.output_size)
        if spec.tie_weights:
            self.decoder.weight = self.embedding.weight

    def sync_spec(self) -> None:
        """Refresh `spec` after layers were replaced in place (structured pruning; the
        embedding width follows the first layer's input size)."""
        self.spec = self.spec.with_layers(self.rnn.specs).model_copy(update={"embed_size": self.rnn.input_size})

    def encode(self, x: Tensor) -> Tensor:
        if self.spec.input_kind is InputKind.EMBEDDING:
            return self.embedding(x)
        if self.spec.input_kind is InputKind.LINEAR:
            y = self.project(x)
            return self.input_act(y) if hasattr(self, "input_act") else y
        return x

    def project(self, x: Tensor) -> Tensor:
        """The input projection before the input activation: x (T, B, F) -> (T', B, E), over
        windows of input_window frames (T' = T + 2p - k + 1) when the front end is a Conv1d."""
        return self.input_proj(unfold_windows(x, self.spec.input_window, self.spec.input_padding))

    def forward(self, x: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """x: (T, B) ids or (T, B, F) features -> (outputs, new state)."""
        h, state = self.rnn(self.drop(self.encode(x)), state)  # h: (T, B, P*D)
        h = self.drop(read_out(h, self.spec.readout))
        if self.spec.decoder_rank:
            h = self.decoder_proj(h)  # (.., P*D) -> (.., r): low-rank head
        return self.decoder(h), state


def read_out(h: Tensor, readout: Readout) -> Tensor:
    """The decoder's input from a layer's outputs h (T, B, P*D): h itself for "all", the last
    step (B, P*D) for "last", the mean over time (B, P*D) for "mean"."""
    if readout is Readout.LAST:
        return h[-1]
    if readout is Readout.MEAN:
        return h.mean(0)
    return h


def apply_output_activation(logits: Tensor, activation: OutputActivation | str) -> Tensor:
    """The spec's output activation over the last (feature) axis of `logits` (..., O)."""
    activation = OutputActivation(activation)
    if activation is OutputActivation.LOG_SOFTMAX:
        return logits.log_softmax(-1)
    if activation is OutputActivation.SOFTMAX:
        return logits.softmax(-1)
    return logits


def refuse_front_end(spec: ModelSpec, what: str, activation_ok: bool = False) -> None:
    """A ValueError for an exporter that runs one frame per step through a plain input Linear: a
    windowed input (Conv1d front end: whole sequences only) and, unless `activation_ok`, an input
    activation are named with what does run them."""
    if spec.input_window > 1 or spec.input_padding:
        raise ValueError(f"{what} does not support a windowed input projection (a Conv1d front end: window "
                         f"{spec.input_window}, padding {spec.input_padding}; the output at a step reads later "
                         "frames); export it with --format c (fully integer int8, NAME_run on whole sequences)")
    if spec.input_activation is not InputActivation.NONE and not activation_ok:
        raise ValueError(f"{what} does not support the input activation ({spec.input_activation.value}) after the "
                         "input projection; export it with --format c (fully integer int8) or --format onnx")


def build_model(spec: ModelSpec) -> SequenceModel:
    return SequenceModel(spec)
