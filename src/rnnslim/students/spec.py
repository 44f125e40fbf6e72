"""What a compact student looks like, and its exact parameter count.

    spec = StudentSpec(cell="gru", hidden_size=296, embed_size=256, max_params=1_100_000)
    mspec = student_model_spec(teacher.spec, spec)   # a ModelSpec: the teacher's input/output, the student's body
    count_params(mspec)                              # == sum(p.numel() for p in SequenceModel(mspec).parameters())

The student keeps what the task fixes (input kind and size, output size, readout, tied
weights) and takes from the spec what the student chooses (cell, layers, projections,
embedding width, dropout). Fields left at None take the teacher's value.

Parameter formula (G gates: LSTM 4, GRU 3, RNN 1; D = 2 if bidirectional; torch keeps two bias
vectors per layer and direction):

    input     embedding V * E | linear F * E + E | identity 0
    layer k   D * (G*H*in + G*H*(P or H) + 2*G*H + P*H)    in: E, then (P or H) * D of the layer below
    decoder   O * out + O     (tied weights: O; the weight is the embedding's)
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec
from rnnslim.recurrent.gates import CellType, as_cell, gate_count


class StudentInit(str, Enum):
    RANDOM = "random"  # torch's default initialisation everywhere
    TEACHER = "teacher"  # copy what fits from the teacher (rnnslim.students.init)


class StudentSpec(BaseModel):
    """A compact student: give hidden_sizes (one per layer) or hidden_size (+ num_layers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cell: str | None = Field(default=None, description="lstm | gru | rnn (rnn_tanh, rnn_relu); None: the teacher's")
    hidden_sizes: list[int] | None = Field(default=None, min_length=1, description="hidden units per layer")
    hidden_size: int | None = Field(default=None, ge=1, description="hidden units of every layer")
    num_layers: int | None = Field(default=None, ge=1, le=64,
                                   description="layers when hidden_size is given; None: the teacher's")
    proj_size: int | list[int] = Field(default=0, description="LSTM projection (LSTMP) per layer or for all; 0: none")
    embed_size: int | None = Field(default=None, ge=1, description="embedding / input projection width; None: the teacher's")
    bidirectional: bool | None = Field(default=None, description="None: the teacher's first layer's")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="None: the teacher's")
    init: StudentInit = Field(default=StudentInit.TEACHER, description="random | teacher (copy what fits)")
    max_params: int | None = Field(default=None, ge=1, description="refuse a student with more parameters")

    @field_validator("cell")
    @classmethod
    def _cell(cls, v: str | None) -> str | None:
        return None if v is None else as_cell(v).value

    @model_validator(mode="after")
    def _check(self) -> StudentSpec:
        if (self.hidden_sizes is None) == (self.hidden_size is None):
            raise ValueError("give exactly one of hidden_sizes (one per layer) or hidden_size (+ num_layers)")
        if self.hidden_sizes is not None:
            if self.num_layers is not None and self.num_layers != len(self.hidden_sizes):
                raise ValueError(f"num_layers {self.num_layers} != len(hidden_sizes) {len(self.hidden_sizes)}")
            if min(self.hidden_sizes) < 1:
                raise ValueError(f"hidden_sizes must be >= 1, got {self.hidden_sizes}")
        projs = self.proj_size if isinstance(self.proj_size, list) else [self.proj_size]
        if any(p < 0 for p in projs):
            raise ValueError(f"proj_size must be >= 0, got {self.proj_size}")
        if any(projs) and self.cell is not None and self.cell != CellType.LSTM.value:
            raise ValueError(f"proj_size is an LSTM projection (LSTMP); a {self.cell} student has none")
        return self

    def layer_sizes(self, teacher_layers: int) -> list[int]:
        if self.hidden_sizes is not None:
            return list(self.hidden_sizes)
        return [self.hidden_size] * (self.num_layers or teacher_layers)

    def projections(self, n_layers: int) -> list[int]:
        if isinstance(self.proj_size, list):
            if len(self.proj_size) != n_layers:
                raise ValueError(f"proj_size gives {len(self.proj_size)} values for {n_layers} layers")
            return list(self.proj_size)
        return [self.proj_size] * n_layers


def student_model_spec(teacher: ModelSpec, spec: StudentSpec) -> ModelSpec:
    """The student's ModelSpec: the teacher's input / output / readout, the spec's body."""
    cell = as_cell(spec.cell) if spec.cell else teacher.cell
    sizes = spec.layer_sizes(len(teacher.layers))
    projs = spec.projections(len(sizes))
    if any(projs) and cell is not CellType.LSTM:
        raise ValueError(f"proj_size is an LSTM projection (LSTMP); a {cell.value} student has none")
    bad = [(h, p) for h, p in zip(sizes, projs) if p and p >= h]
    if bad:
        raise ValueError(f"proj_size must be smaller than the layer's hidden size, got (hidden, proj) {bad}")
    bidir = teacher.layers[0].bidirectional if spec.bidirectional is None else spec.bidirectional
    embed = spec.embed_size or teacher.embed_size
    if teacher.input_kind is InputKind.IDENTITY and embed != teacher.input_size:
        raise ValueError(f"the teacher feeds its {teacher.input_size} input features straight into the recurrent "
                         f"layers (input_kind identity): embed_size must stay {teacher.input_size}, got {embed}")
    layers = [LayerShape(hidden_size=h, proj_size=p, bidirectional=bidir) for h, p in zip(sizes, projs)]
    update = {"cell": cell, "embed_size": embed, "layers": layers,
              "dropout": teacher.dropout if spec.dropout is None else spec.dropout}
    try:
        return ModelSpec.model_validate({**teacher.model_dump(), **update})
    except ValueError as e:  # tied weights: the last layer must produce embed_size features
        raise ValueError(f"the student spec does not fit the teacher's task: {e}") from None


def count_params(spec: ModelSpec) -> int:
    """Parameters of SequenceModel(spec), from the formula in the module docstring."""
    G = gate_count(spec.cell)
    E = spec.embed_size
    total = {InputKind.EMBEDDING: spec.input_size * E, InputKind.LINEAR: spec.input_size * E + E,
             InputKind.IDENTITY: 0}[spec.input_kind]
    width = E
    for layer in spec.layers:
        H, P, D = layer.hidden_size, layer.proj_size, 2 if layer.bidirectional else 1
        total += D * (G * H * width + G * H * (P or H) + 2 * G * H + P * H)
        width = (P or H) * D
    total += spec.output_size if spec.tie_weights else spec.output_size * width + spec.output_size
    return total
