"""Unit groups: exactly which tensors and indices a structured cut touches.

For layer l of a recurrent module with cell C, H hidden units, P projected units (P = H
without projection), D directions, G gates (LSTM 4, GRU 3, RNN 1):

  hidden group (H units), in every direction d:
    weight_ih_l{l}, weight_hh_l{l}, bias_ih_l{l}, bias_hh_l{l}   rows  g*H + k  (all G gates)
    weight_hh_l{l}                                              cols  k        (no projection)
    weight_hr_l{l}                                              cols  k        (projection)
  projected group (P units, LSTM with proj_size only), in every direction:
    weight_hr_l{l}                                              rows  k
    weight_hh_l{l}                                              cols  k
  the output group of the layer (projected if any, else hidden) is also read by
    the next layer's weight_ih_l{l+1} (both directions)         cols  k, P + k (bidirectional)
    or, for the last layer, by the consumers in the CouplingGraph (Linear columns, ...).

Bidirectional layers keep unit k of both directions tied: a cut removes it from the
forward and the reverse direction together, so every direction keeps the same width and
the layer stays a plain torch module (the two could in principle be cut independently).

An embedding group (kind EMBED, named by the source's path, e.g. "embedding") holds the
E output features of a feature source (graph/sources.py) and who reads them:
    embedding.weight [V, E]                                     cols  j
    or, for an input Linear [E, F]: weight rows j, bias j
    every consumer's weight_ih_l0 (both directions)             cols  j
A source whose weight is tied to another tensor (SequenceModel tie_weights: the decoder
reads the last layer's output through embedding.weight) is blocked: cutting E would also
cut that layer's output units, which this group does not hold.

Every slice stores, for each position along its dim, the unit it belongs to (-1: not
this group's), so a cut is "drop the positions whose unit is removed" in all tensors.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.graph.coupling import (
    ConsumerKind,
    CouplingGraph,
    FeatureSource,
    GroupKind,
    RecurrentModule,
    SourceKind,
)
from rnnslim.recurrent.gates import gate_count, row_to_unit


@dataclass(frozen=True, eq=False)
class TensorSlice:
    param: str  # full parameter name in the model, e.g. "rnn.layers.0.weight_ih_l0"
    dim: int  # 0 = rows, 1 = columns / input channels
    units: Tensor  # (size along dim,) long: owning unit of each position, -1 = untouched
    role: str  # what these positions are ("gate rows", "recurrent cols", "consumer cols", ...)

    def describe(self) -> str:
        """Runs of positions, e.g. 'rows [0:8)=k, [8:16)=k, ...' meaning position = offset + unit."""
        u = self.units.tolist()
        runs, i = [], 0
        while i < len(u):
            if u[i] < 0:
                i += 1
                continue
            j = i
            while j + 1 < len(u) and u[j + 1] == u[j] + 1:
                j += 1
            runs.append((i, j + 1, u[i]))
            i = j + 1
        txt = ", ".join(f"[{a}:{b})=" + ("k" if s == 0 else f"k-{s}" if s > 0 else f"k+{-s}") for a, b, s in runs[:6])
        if len(runs) > 6:
            txt += f", ... ({len(runs)} runs)"
        return f"{'rows' if self.dim == 0 else 'cols'} {txt}"


@dataclass(eq=False)
class UnitGroup:
    """The units of one layer of one recurrent module and every tensor slice they own."""

    name: str
    module: str  # path of the recurrent module
    layer: int
    kind: GroupKind
    size: int
    slices: list[TensorSlice] = field(default_factory=list)
    tie: str | None = None  # groups with the same tie must keep the same count (one torch module)
    blocked: str | None = None  # why this group cannot be cut (exposed output, tied weights, ...)
    unresolved: bool = False  # blocked because its consumers could not be determined

    def positions(self, slc: TensorSlice, units: Tensor) -> Tensor:
        """Positions of `slc` owned by `units`."""
        return torch.nonzero(torch.isin(slc.units, units)).flatten()

    def __str__(self) -> str:
        head = f"UnitGroup {self.name}: {self.size} {self.kind.value} units of {self.module} (layer {self.layer})"
        if self.tie:
            head += f", size tied with the other layers of {self.tie}"
        if self.blocked:
            head += f"\n  cannot be cut: {self.blocked}"
        width = max((len(s.param) for s in self.slices), default=0)
        lines = [head] + [f"  {s.param:<{width}}  {s.describe():<40} {s.role}" for s in self.slices]
        return "\n".join(lines)

    def cut(self, keep) -> Cut:
        keep = torch.as_tensor(sorted({int(k) for k in keep}), dtype=torch.long)
        if keep.numel() == 0:
            raise ValueError(f"group {self.name}: a cut must keep at least one unit")
        if keep.min() < 0 or keep.max() >= self.size:
            raise IndexError(f"group {self.name}: unit indices must be in [0, {self.size}), got {keep.tolist()[:8]}...")
        return Cut(self, keep)


@dataclass(eq=False)
class Cut:
    """A group with the units to keep (sorted); the rest are removed everywhere."""

    group: UnitGroup
    keep: Tensor

    @property
    def removed(self) -> Tensor:
        mask = torch.ones(self.group.size, dtype=torch.bool)
        mask[self.keep] = False
        return torch.nonzero(mask).flatten()

    def __str__(self) -> str:
        rem = self.removed.tolist()
        shown = ", ".join(map(str, rem[:12])) + (", ..." if len(rem) > 12 else "")
        lines = [f"Cut {self.group.name}: keep {len(self.keep)} of {self.group.size} units, remove [{shown}]"]
        for s in self.group.slices:
            pos = self.group.positions(s, self.removed).tolist()
            p = ", ".join(map(str, pos[:8])) + (", ..." if len(pos) > 8 else "")
            lines.append(f"  {s.param}: drop {'rows' if s.dim == 0 else 'cols'} [{p}] ({len(pos)} of {len(s.units)})")
        return "\n".join(lines)


def _sfx(layer: int, d: int) -> str:
    return f"_l{layer}" + ("_reverse" if d == 1 else "")


def _recurrent_groups(rm: RecurrentModule, has_bias: bool) -> list[UnitGroup]:
    H, P, D, G = rm.hidden_size, rm.out_units, rm.directions, gate_count(rm.cell)
    tie = rm.path if rm.num_layers > 1 else None
    groups = []
    for layer in range(rm.num_layers):
        rows = row_to_unit(rm.cell, H)  # (G*H,)
        hid = UnitGroup(rm.group_name(layer), rm.path, layer, GroupKind.HIDDEN, H, tie=tie)
        for d in range(D):
            p = f"{rm.path}.{{}}{_sfx(layer, d)}"
            names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_bias else [])
            hid.slices += [TensorSlice(p.format(n), 0, rows, f"gate rows ({G} gates)") for n in names]
            own = "weight_hr" if rm.proj_size else "weight_hh"
            hid.slices.append(TensorSlice(p.format(own), 1, torch.arange(H), "recurrent cols" if own == "weight_hh"
                                          else "projection cols"))
        groups.append(hid)
        if rm.proj_size:
            proj = UnitGroup(rm.group_name(layer, GroupKind.PROJ), rm.path, layer, GroupKind.PROJ, P, tie=tie)
            for d in range(D):
                p = f"{rm.path}.{{}}{_sfx(layer, d)}"
                proj.slices += [TensorSlice(p.format("weight_hr"), 0, torch.arange(P), "projection rows"),
                                TensorSlice(p.format("weight_hh"), 1, torch.arange(P), "recurrent cols")]
            groups.append(proj)
        out = groups[-1]  # the layer's output group (projected if any)
        if layer + 1 < rm.num_layers:
            cols = torch.arange(P).repeat(D)  # next layer input = [dir 0 units, dir 1 units]
            for d in range(D):
                out.slices.append(TensorSlice(f"{rm.path}.weight_ih{_sfx(layer + 1, d)}", 1, cols,
                                              "next layer input cols"))
    return groups


def _source_group(model: nn.Module, src: FeatureSource) -> UnitGroup:
    """The EMBED group of a feature source: its own slices, then its consumers' columns."""
    E, own = src.size, torch.arange(src.size)
    g = UnitGroup(src.path, src.path, 0, GroupKind.EMBED, E, blocked=src.blocked)
    if src.kind is SourceKind.EMBEDDING:  # weight [V, E]
        g.slices.append(TensorSlice(f"{src.path}.weight", 1, own, "embedding cols"))
    else:  # Linear weight [E, F], bias [E]
        g.slices.append(TensorSlice(f"{src.path}.weight", 0, own, "input projection rows"))
        if model.get_submodule(src.path).bias is not None:
            g.slices.append(TensorSlice(f"{src.path}.bias", 0, own, "input projection bias"))
    for c in src.consumers.values():
        units = torch.tensor([s[1] if s is not None and s[0] == src.path else -1 for s in c.feats], dtype=torch.long)
        for param in _consumer_params(model, c.path, c.kind):
            g.slices.append(TensorSlice(param, 1, units, f"{c.kind.value} consumer cols"))
    return g


def _consumer_params(model: nn.Module, path: str, kind: ConsumerKind) -> list[str]:
    if kind is ConsumerKind.RECURRENT:
        m = model.get_submodule(path)
        return [f"{path}.weight_ih_l0"] + ([f"{path}.weight_ih_l0_reverse"] if m.bidirectional else [])
    return [f"{path}.weight"]


def _shared_params(model: nn.Module) -> dict[int, list[str]]:
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return seen


def build_groups(model: nn.Module, graph: CouplingGraph) -> list[UnitGroup]:
    """All unit groups of `model` with their consumers' slices: the recurrent groups in
    module order, then the feature sources' (embedding) groups."""
    groups: list[UnitGroup] = []
    for rm in graph.recurrent.values():
        groups += _recurrent_groups(rm, model.get_submodule(rm.path).bias)
    by_name = {g.name: g for g in groups}
    for c in graph.consumers.values():
        for name in c.groups():
            units = torch.tensor([s[1] if s is not None and s[0] == name else -1 for s in c.feats], dtype=torch.long)
            for param in _consumer_params(model, c.path, c.kind):
                by_name[name].slices.append(TensorSlice(param, 1, units, f"{c.kind.value} consumer cols"))
    groups += [_source_group(model, src) for src in graph.sources.values()]
    shared = _shared_params(model)
    params = dict(model.named_parameters(remove_duplicate=False))
    for g in groups:
        if g.kind is GroupKind.EMBED:
            pass  # blocked (or not) by its FeatureSource
        elif g.name in graph.exposed:
            g.blocked = (f"its features reach the model's output directly ({graph.exposed[g.name]}), so its size is "
                         "visible")
        elif g.module in graph.unresolved and g.kind is graph.recurrent[g.module].out_kind:
            # the output sequence or h_n of this module goes somewhere rnnslim could not follow
            g.blocked = "unresolved coupling: " + "; ".join(graph.unresolved[g.module])
            g.unresolved = True
        for s in g.slices:
            aliases = shared.get(id(params.get(s.param)), [])
            if len(aliases) > 1:
                g.blocked = f"{s.param} is shared with {[a for a in aliases if a != s.param]} (tied weights)"
                if g.kind is GroupKind.EMBED:
                    g.blocked += (": the tied tensor reads other features (the decoder reads the last layer's "
                                  "output), so the embedding width cannot shrink on its own; untie the weights first")
    _merge_tied_embedding(groups, shared, params)
    return groups


def _tie_only(g: UnitGroup) -> bool:
    return bool(g.blocked) and "(tied weights)" in g.blocked and not g.unresolved


def _merge_tied_embedding(groups: list[UnitGroup], shared: dict[int, list[str]], params: dict) -> None:
    """Tied embedding / decoder (decoder.weight is encoder.weight): the last layer's unit k
    and embedding feature k are one position of one tensor, so they are cut together. The
    recurrent group takes over the embedding group's slices (the first layer's input
    columns), the shared tensor is sliced once under its first name, and the group can be
    cut (apply_cuts_ re-ties the decoder to the new tensor)."""
    for ge in [g for g in groups if g.kind is GroupKind.EMBED and _tie_only(g)]:
        tied_ids = {id(params[s.param]) for s in ge.slices if len(shared.get(id(params.get(s.param)), [])) > 1}
        for gh in groups:
            if gh is ge or gh.kind is GroupKind.EMBED or not _tie_only(gh) or gh.size != ge.size:
                continue
            hits = [s for s in gh.slices if id(params.get(s.param)) in tied_ids]
            if not hits or any(s.dim != 1 for s in hits):
                continue
            # the shared tensor once, under the name named_parameters() yields
            gh.slices = [dataclasses.replace(s, param=shared[id(params[s.param])][0]) if s in hits else s
                         for s in gh.slices]
            kept = {(s.param, s.dim) for s in gh.slices}
            gh.slices += [s for s in ge.slices if (s.param, s.dim) not in kept]
            gh.blocked = None
            ge.blocked = (f"cut together with {gh.name} (tied weights: the last layer's units are the embedding's "
                          "features)")
            break
