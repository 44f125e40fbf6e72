"""The symbolic values the graph walk gives fx nodes (walk.py) and the ops a data path records.

A `Data` value is the one tensor that carries the user's data, with a label per axis and the
chain of operations (`ops`) applied since the input. Labels: "x0", "x1", ... name the data
input's axes until a layer fixes their role; "T" time and "B" batch once a recurrent module
has read them; "F<n>" a feature axis (n distinguishes widths). An axis merged by a reshape
holds several labels in order (("T", "B") after word_language_model's view(-1, ntoken));
a size-1 axis made by unsqueeze holds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


# --- ops of a data path (lowered by lower.py) ---------------------------------------------
@dataclass(frozen=True)
class Embed:
    name: str  # the user's module path
    module: nn.Embedding


@dataclass(frozen=True)
class Affine:
    """y = x W^T + b over the feature axis: a Linear, a Conv1d, an eval BatchNorm1d.

    A Conv1d with kernel k > 1 is `window` k, `padding` p: W is (out, k*in) over windows of k
    frames (rnnslim.models.window layout)."""

    names: tuple[str, ...]  # user tensor names it came from
    weight: Tensor  # (out, in), or (out, k*in) for a window
    bias: Tensor  # (out,)
    linear: bool  # False: a per-feature scale and shift (BatchNorm), foldable into any next matrix
    param: nn.Parameter | None = None  # the user's weight Parameter (tied decoder detection)
    window: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Recurrent:
    name: str
    module: nn.Module  # nn.LSTM / GRU / RNN or TorchContractStack
    call: int = 0  # the walk's index of this call (states refer to it)


@dataclass(frozen=True)
class ReadoutOp:
    kind: str  # "last" | "mean"


@dataclass(frozen=True)
class Activation:
    kind: str  # "log_softmax" | "softmax"


@dataclass(frozen=True)
class InputAct:
    """An elementwise activation (relu / tanh / sigmoid / gelu / hardtanh) on the data path."""

    kind: str  # rnnslim.models.sequence.InputActivation value


Op = Embed | Affine | Recurrent | ReadoutOp | Activation | InputAct


# --- node values ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    axes: tuple[tuple[str, ...], ...]
    ops: tuple = ()
    source: str = ""  # forward's argument the data came from


@dataclass(frozen=True)
class Arg:
    """A tensor argument of forward not yet used (becomes Data or a state input)."""

    name: str


@dataclass(frozen=True)
class RnnCall:
    index: int  # position among the recurrent calls on the data path
    module: nn.Module
    data: Data  # the output sequence


@dataclass(frozen=True)
class StateOf:
    call: RnnCall
    part: str | None = None  # None: the whole state; "h" / "c" of an LSTM


@dataclass(frozen=True)
class InputState:
    arg: str  # forward's argument (or "" for a state built inside forward from zeros)
    whole: bool = True  # False: a piece (h of (h, c)) of the argument


@dataclass(frozen=True)
class Meta:
    """A Python value or a size read from a tensor's shape (arguments of reshapes, zeros)."""


@dataclass(frozen=True)
class Param:
    """A tensor held by the module (get_attr)."""

    name: str


@dataclass
class Bindings:
    """Roles of the data input's axes and the size of every label, filled while walking."""

    roles: dict[str, str] = field(default_factory=dict)  # "x1" -> "T"
    sizes: dict[str, int] = field(default_factory=dict)  # label -> size
    features: int = 0  # counter for fresh feature labels

    def role(self, label: str) -> str:
        if label.startswith("F") and ":" not in label:
            return "F"
        return self.roles.get(label, label)

    def fresh_feature(self) -> str:
        self.features += 1
        return f"F{self.features}"

    def note_sizes(self, axes, value) -> None:
        if isinstance(value, torch.Tensor):
            for group, size in zip(axes, value.shape):
                if len(group) == 1:
                    self.sizes.setdefault(group[0], int(size))
