"""What is coupled: the recurrent modules of a model and every module that reads their units.

A *unit group* is the set of hidden units of one layer of one recurrent module (or, for
an LSTM with projection, its projected units). Removing unit k of a group touches:
  - the recurrent module itself (gate rows, recurrent columns; see graph/groups.py),
  - every *consumer*: a module whose input features are (partly) those units, e.g. the
    next layer's `weight_ih` columns, an output Linear's columns, a Conv1d's channels.

`CouplingGraph` records the recurrent modules, the consumers with an explicit map
"input feature j of consumer C is unit u of group G" (or comes from elsewhere), the
groups whose features leave the model without passing a consumer (`exposed`: their size
is visible to the caller, so they cannot shrink) and the modules whose coupling could not
be determined (`unresolved`, with reasons). It is produced by graph/discover.py.

Group names: the module path for a single-layer module ("rnn.layers.0", "lstm"),
"path[l]" for layer l of a multi-layer torch module ("lstm[1]"), plus ":proj" for the
projected units of an LSTM with proj_size ("lstm[1]:proj").

A *feature source* (`FeatureSource`, found by graph/sources.py) is the other end of a
recurrent module: the nn.Embedding (or input nn.Linear) whose E output features are the
input features of a recurrent module's layer 0. Its group (kind EMBED, named by the
source's module path, e.g. "embedding") holds the embedding's columns (a Linear's output
rows + bias) and the matching weight_ih_l0 columns of every consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from torch import nn

from rnnslim.recurrent.gates import CellType, cell_of_module

Source = tuple[str, int]  # (group name, unit index)


class GroupKind(str, Enum):
    HIDDEN = "hidden"  # the H units of a layer: gate rows, cell state
    PROJ = "proj"  # the P projected units of an LSTM with proj_size (rows of weight_hr)
    EMBED = "embed"  # the E output features of an embedding / input Linear read by recurrent layer 0


class SourceKind(str, Enum):
    EMBEDDING = "embedding"  # nn.Embedding [V, E]: feature j is column j of weight
    LINEAR = "linear"  # nn.Linear [E, F]: feature j is row j of weight and bias[j]


class ConsumerKind(str, Enum):
    LINEAR = "linear"  # nn.Linear: columns of weight (in_features)
    RECURRENT = "recurrent"  # nn.LSTM/GRU/RNN: columns of weight_ih_l0 (both directions)
    CONV1D = "conv1d"  # nn.Conv1d: input channels (dim 1 of weight)


class CouplingError(ValueError):
    """The coupling of a recurrent layer cannot be determined or is not supported."""


def declare_hint(path: str, example: str = "fc") -> str:
    return (f"declare it by hand: consumers={{'{path}': ['{example}']}} (module names whose input features are "
            f"exactly the output features of '{path}', in order)")


@dataclass(frozen=True)
class RecurrentModule:
    """Shape of one torch recurrent module (possibly multi-layer) found in a model."""

    path: str
    cell: CellType
    input_size: int
    hidden_size: int
    proj_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool

    @classmethod
    def from_module(cls, path: str, m: nn.RNNBase) -> RecurrentModule:
        return cls(path, cell_of_module(m), m.input_size, m.hidden_size, getattr(m, "proj_size", 0), m.num_layers,
                   m.bidirectional, m.batch_first)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_units(self) -> int:
        """Units per direction in the output sequence and h_n: P or H."""
        return self.proj_size or self.hidden_size

    @property
    def out_kind(self) -> GroupKind:
        return GroupKind.PROJ if self.proj_size else GroupKind.HIDDEN

    def group_name(self, layer: int, kind: GroupKind = GroupKind.HIDDEN) -> str:
        base = self.path if self.num_layers == 1 else f"{self.path}[{layer}]"
        return base + (":proj" if kind is GroupKind.PROJ else "")

    def out_feats(self, layer: int | None = None) -> tuple[Source, ...]:
        """Feature map of the output sequence (layer=None: last layer) or of h_n[layer*D + d]:
        [units of direction 0..., units of direction 1...] for the output, one direction for h_n."""
        name = self.group_name(self.num_layers - 1 if layer is None else layer, self.out_kind)
        one = tuple((name, k) for k in range(self.out_units))
        return one * self.directions if layer is None else one

    def describe(self) -> str:
        cell = self.cell.value.upper()
        size = f"{self.hidden_size}" + (f" proj {self.proj_size}" if self.proj_size else "")
        flags = [f"{self.num_layers} layers" if self.num_layers > 1 else "",
                 "bidirectional" if self.bidirectional else "",
                 "batch_first" if self.batch_first else ""]
        return f"{cell} {self.input_size} -> {size}" + "".join(f", {f}" for f in flags if f)


@dataclass(frozen=True)
class Consumer:
    """A module whose input features are partly recurrent units.

    feats[j] is the (group, unit) feeding input feature j (a column of a Linear or of
    weight_ih, an input channel of a Conv1d), or None when it comes from elsewhere.
    """

    path: str
    kind: ConsumerKind
    feats: tuple[Source | None, ...]

    def groups(self) -> list[str]:
        return sorted({s[0] for s in self.feats if s is not None})


@dataclass
class FeatureSource:
    """A module whose output features are (among others) the inputs of recurrent layer 0.

    consumers: the modules reading its features, feats[j] = (source path, feature) or None;
    blocked: why its width cannot change (features returned by forward, an op rnnslim
    cannot follow), or None.
    """

    path: str
    kind: SourceKind
    size: int
    consumers: dict[str, Consumer] = field(default_factory=dict)
    blocked: str | None = None

    def describe(self) -> str:
        reads = ", ".join(f"{c.path} ({c.kind.value}, {sum(1 for s in c.feats if s)} inputs)"
                          for c in self.consumers.values())
        out = f"  {self.path}: {self.kind.value} source ({self.size} embed features) -> {reads or 'nothing'}"
        return out + (f"\n    BLOCKED: {self.blocked}" if self.blocked else "")


@dataclass
class CouplingGraph:
    recurrent: dict[str, RecurrentModule]
    consumers: dict[str, Consumer] = field(default_factory=dict)
    exposed: dict[str, str] = field(default_factory=dict)  # group -> where it leaves the model
    unresolved: dict[str, list[str]] = field(default_factory=dict)  # recurrent path -> reasons
    notes: list[str] = field(default_factory=list)
    method: str = "fx"  # "fx", "trace" (autograd data flow), "declared"
    sources: dict[str, FeatureSource] = field(default_factory=dict)  # path -> embedding / input Linear

    def consumers_of(self, group: str) -> list[Consumer]:
        return [c for c in self.consumers.values() if any(s is not None and s[0] == group for s in c.feats)]

    def check(self, paths: list[str] | None = None) -> None:
        """Raise CouplingError when any (or any of `paths`) recurrent module is unresolved."""
        bad = {p: r for p, r in self.unresolved.items() if paths is None or p in paths}
        if bad:
            lines = [f"cannot determine which modules consume the output of '{p}':\n    - " + "\n    - ".join(r)
                     + f"\n  Fix: {declare_hint(p)}." for p, r in bad.items()]
            raise CouplingError("\n".join(lines))

    def __str__(self) -> str:
        out = [f"CouplingGraph (found by {self.method}): {len(self.recurrent)} recurrent module(s)"]
        for path, rm in self.recurrent.items():
            out.append(f"  {path}: {rm.describe()}")
            for layer in range(rm.num_layers):
                kinds = [GroupKind.HIDDEN] + ([GroupKind.PROJ] if rm.proj_size else [])
                for kind in kinds:
                    name = rm.group_name(layer, kind)
                    size = rm.proj_size if kind is GroupKind.PROJ else rm.hidden_size
                    internal = layer < rm.num_layers - 1 and kind is rm.out_kind
                    reads = [f"{path}[{layer + 1}].weight_ih"] if internal else []
                    if rm.proj_size and kind is GroupKind.HIDDEN:
                        reads.append("its own projection (weight_hr)")
                    reads += [f"{c.path} ({c.kind.value}, {sum(1 for s in c.feats if s and s[0] == name)} inputs)"
                              for c in self.consumers_of(name)]
                    if name in self.exposed:
                        reads.append(f"EXPOSED at {self.exposed[name]}")
                    out.append(f"    {name} ({size} {kind.value} units) -> " + (", ".join(reads) or "nothing outside"))
            for reason in self.unresolved.get(path, []):
                out.append(f"    UNRESOLVED: {reason}")
        out += [src.describe() for src in self.sources.values()]
        for note in self.notes:
            out.append(f"  note: {note}")
        return "\n".join(out)
