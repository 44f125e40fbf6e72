"""Structured pruning: remove whole hidden units, layers or vocabulary entries for real.

    result = prune_units_(model, StructuredPruning(ratio=0.5, round_to=8))
    result = prune_units_(model, StructuredPruning(per_layer={0: 0.5, 1: 0.3}))
    result = prune_units_(user_model, StructuredPruning(ratio=0.25, scope="global"),
                          example_inputs=(x,))            # any nn.Module with LSTM/GRU/RNN inside
    result = prune_units_(model, StructuredPruning(ratio=0.5, embed_ratio=0.75))  # embedding width too
    keep_units_(model, {"rnn.layers.0": [0, 3, 5]})      # explicit kept units
    prune_units_(lm, cfg, example_inputs=lambda m: (x, m.init_hidden(4)))  # inputs built for the sizes
                                                         # before the cut, and again after it
    print(unit_groups(model)[0])                         # the tensors and indices a cut touches

Related verbs: remove_layers_ (layers.py), prune_vocab_ (vocab.py),
GroupLasso / remove_dead_units_ (group_lasso.py), replay / save_edited / load_edited
(history.py); coupling discovery lives in rnnslim.graph.

The model gets physically smaller: new torch modules with fewer units replace the old
ones, every coupled tensor is sliced (graph/groups.py lists them), and each edit appends
a JSON record to `model.history`, so `save_model`/`load_model` (SequenceModel: the
ModelSpec holds the sizes) or `replay` (any model) re-create the architecture.
`example_inputs` is a tuple of forward arguments, or a callable `model -> tuple` that is
called on the model before the cut (to trace it) and again after (the run check), so an
initial state from the user's `init_hidden` has the new size. Integer attributes of the
user's own modules that hold a changed size and are read as one (`self.nhid` in
`init_hidden`) are updated to the new size (attributes.py), before the run check; each
update is listed in StructuredResult.updated_attributes and in the history record.
Layer keys: an int is the i-th recurrent layer in module order (for a SequenceModel, the
stack layer), a str is a group name ("rnn.layers.1", "lstm", "lstm[1]", "lstm:proj") or a
module path (all its layers).

Embedding width (`embed_ratio`): the E output features of the nn.Embedding (or input
nn.Linear, e.g. SequenceModel.input_proj) that recurrent layer 0 reads form a group of
kind EMBED named by the module path ("embedding", "input_proj"; graph/sources.py finds it
with torch.fx). A cut removes embedding columns (Linear: output rows + bias) and the same
columns of every consumer's weight_ih_l0; it is scored with the same criterion and
reducer as hidden units, counted per source like `ratio` in layer scope (rounded with
`round_to`), independent of `ratio` / `per_layer` / `layers`, and reported in
StructuredResult.keeps / sizes under the group name; keep_units_(model, {"embedding":
[...]}) and replay take it too, and a SequenceModel's ModelSpec.embed_size follows. Tied
embedding / decoder weights are refused (CouplingError naming the tie): the decoder reads
the last layer's output through the same tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from rnnslim.graph.coupling import (
    Consumer,
    ConsumerKind,
    CouplingError,
    CouplingGraph,
    GroupKind,
    RecurrentModule,
    declare_hint,
)
from rnnslim.graph.discover import discover_coupling
from rnnslim.graph.groups import UnitGroup, build_groups
from rnnslim.prune.importance import Criterion, score_model
from rnnslim.prune.structured.attributes import (  # noqa: F401  (stale_size_attributes: re-exported)
    SizeChange,
    stale_size_attributes,
    update_size_attributes_,
)
from rnnslim.prune.structured.select import (
    global_counts,
    layer_counts,
    top_units,
    unit_scores,
)
from rnnslim.prune.structured.units import apply_cuts_, slice_module_state
from rnnslim.results import EditResult
from rnnslim.utils.atomic import atomic_edit
from rnnslim.verbs import Family, register

ExampleInputs = tuple | Callable[[nn.Module], tuple]  # forward arguments, or model -> forward arguments


class PruneScope(str, Enum):
    LAYER = "layer"  # each layer loses its own ratio of units
    GLOBAL = "global"  # the lowest-scored units over all layers go


class UnitReduce(str, Enum):
    L1 = "l1"  # sum of |score| over the unit's weights
    L2 = "l2"  # sqrt(sum score^2): the unit's group norm


class UnitPruningFields(BaseModel):
    """Fields shared by StructuredPruning and the prune_units stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ratio: float | None = Field(default=None, ge=0, lt=1, description="fraction of hidden units to remove")
    per_layer: dict[int | str, float] | None = Field(default=None, description="ratio per layer key")
    scope: PruneScope = PruneScope.LAYER
    round_to: int = Field(default=1, ge=1, description="kept sizes rounded to a multiple of this (e.g. 8)")
    criterion: Criterion = Field(default=Criterion.MAGNITUDE, description="per-weight importance (|W|, taylor, ...)")
    # l2 since 2026-12: one shot it keeps better units on every reference model and width measured
    # (benchmarks/results/prune_units_reduce.json); l1 was the default before
    reduce: UnitReduce = Field(default=UnitReduce.L2, description="how a unit's weight scores add up: l2 (the "
                               "group norm) or l1 (the sum)")
    calibration_batches: int = Field(default=8, ge=1, description="batches for data-driven criteria")
    normalize: bool = Field(default=True, description="global scope: divide each layer's scores by their mean")
    proj_ratio: float | None = Field(default=None, ge=0, lt=1, description="also prune LSTM projections")
    embed_ratio: float | None = Field(default=None, ge=0, lt=1,
                                      description="fraction of embedding features (recurrent layer 0 inputs) to remove")
    layers: list[int | str] | None = Field(default=None, description="only these layers (default: all prunable)")

    @model_validator(mode="after")
    def _check(self):
        if self.ratio is not None and self.per_layer is not None:
            raise ValueError("give exactly one of ratio or per_layer")
        if self.ratio is None and self.per_layer is None and self.proj_ratio is None and self.embed_ratio is None:
            raise ValueError("give ratio, per_layer, proj_ratio or embed_ratio")
        if self.per_layer is not None:
            if self.layers is not None:
                raise ValueError("per_layer already names the layers; do not also give layers")
            if self.scope is PruneScope.GLOBAL:
                raise ValueError("per_layer ratios need scope='layer'")
            bad = {k: v for k, v in self.per_layer.items() if not 0 <= v < 1}
            if bad:
                raise ValueError(f"per_layer ratios must be in [0, 1): {bad}")
        return self


class StructuredPruning(UnitPruningFields):
    """Config of prune_units_: how many hidden units go, chosen how."""


@dataclass
class StructuredResult(EditResult):
    keeps: dict[str, list[int]]  # group name -> kept unit indices (old numbering); "embedding": kept features
    sizes: dict[str, tuple[int, int]]  # group name -> (before, after)
    modules: dict[str, RecurrentModule]  # recurrent modules as they were before the edit
    skipped: dict[str, str] = field(default_factory=dict)  # group -> why it was left alone
    params_before: int = 0
    params_after: int = 0
    stale_attributes: list[str] = field(default_factory=list)  # user attributes still naming an old size
    updated_attributes: dict[str, list[int]] = field(default_factory=dict)  # "WordLM.nhid": [old, new]

    def __str__(self) -> str:
        lines = [f"pruned units: {self.params_before:,} -> {self.params_after:,} parameters"]
        lines += [f"  {g}: {a} -> {b}" for g, (a, b) in self.sizes.items()]
        lines += [f"  {g}: skipped ({why})" for g, why in self.skipped.items()]
        lines += [f"  updated: {a} {old} -> {new}" for a, (old, new) in self.updated_attributes.items()]
        lines += [f"  check: {s}" for s in self.stale_attributes]
        return "\n".join(lines)

    def slice_state(self, path: str, state):
        """Slice an initial state of the recurrent module at `path` (torch format) to the kept units."""
        rm = self.modules[path]
        keep = lambda name: torch.tensor(self.keeps[name]) if name in self.keeps else None  # noqa: E731
        outs = [keep(rm.group_name(layer, rm.out_kind)) for layer in range(rm.num_layers)]
        hids = [keep(rm.group_name(layer)) for layer in range(rm.num_layers)]
        return slice_module_state(state, outs, hids, rm.directions)

    def slice_stack_state(self, state: list, stack_path: str = "rnn") -> list:
        """Slice a RecurrentStack state (one entry per layer) to the kept units."""
        return [self.slice_state(f"{stack_path}.layers.{k}", s) if f"{stack_path}.layers.{k}" in self.modules else s
                for k, s in enumerate(state)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def unit_groups(model: nn.Module, example_inputs: tuple | None = None, consumers: dict | None = None,
                graph: CouplingGraph | None = None) -> list[UnitGroup]:
    """Every unit group of `model` (print one to see the tensors a cut touches)."""
    graph = graph or discover_coupling(model, example_inputs, consumers, strict=False)
    return build_groups(model, graph)


def resolve_keys(groups: list[UnitGroup], keys, kinds=(GroupKind.HIDDEN,)) -> dict[object, list[UnitGroup]]:
    """Layer keys (int index among hidden groups, group name, module path) -> groups."""
    hidden = [g for g in groups if g.kind is GroupKind.HIDDEN]
    out = {}
    for key in keys:
        index = int(key) if isinstance(key, str) and key.lstrip("-").isdigit() else key  # "1" from JSON keys
        if isinstance(index, int):
            if not -len(hidden) <= index < len(hidden):
                raise KeyError(f"layer {index} does not exist; the model has {len(hidden)} recurrent layers: "
                               f"{[g.name for g in hidden]}")
            out[key] = [hidden[index]]
            continue
        found = [g for g in groups if g.name == key] or [g for g in groups if g.module == key and g.kind in kinds]
        if not found:
            raise KeyError(f"no recurrent layer or unit group named {key!r}; groups: {[g.name for g in groups]}")
        out[key] = found
    return out


def _blocked_error(g: UnitGroup) -> CouplingError:
    if g.kind is GroupKind.EMBED:
        return CouplingError(f"the embedding width of '{g.name}' cannot be cut: {g.blocked}")
    hint = declare_hint(g.module) if g.unresolved else f"if rnnslim misread the model, {declare_hint(g.module)}"
    return CouplingError(f"units of '{g.name}' cannot be removed: {g.blocked}.\n  Fix: {hint}.")


def _select(model: nn.Module, groups: list[UnitGroup], cfg: UnitPruningFields, scores) -> tuple[dict, dict]:
    skipped: dict[str, str] = {}
    if cfg.layers is not None:
        chosen = [g for gs in resolve_keys(groups, cfg.layers).values() for g in gs]
    elif cfg.per_layer is not None:
        chosen = [g for gs in resolve_keys(groups, cfg.per_layer).values() for g in gs]
    else:
        chosen = [g for g in groups if g.kind is GroupKind.HIDDEN]
    explicit = cfg.layers is not None or cfg.per_layer is not None
    embed = [g.name for g in chosen if g.kind is GroupKind.EMBED]
    if embed:
        raise ValueError(f"{embed} name the embedding width, not a recurrent layer: give embed_ratio instead")
    for g in chosen:  # exposed / tied groups are skipped unless named; unknown coupling is always an error
        if g.blocked:
            if explicit or g.unresolved:
                raise _blocked_error(g)
            skipped[g.name] = g.blocked
    chosen = [g for g in chosen if not g.blocked and g.kind is GroupKind.HIDDEN]
    l2 = cfg.reduce is UnitReduce.L2
    keeps: dict[str, Tensor] = {}
    if chosen and (cfg.ratio is not None or cfg.per_layer is not None):
        sc = {g.name: unit_scores(model, g, scores, l2) for g in chosen}
        if cfg.per_layer is not None:
            ratios = {g.name: r for key, r in cfg.per_layer.items() for g in resolve_keys(groups, [key])[key]}
            counts = layer_counts(chosen, ratios, cfg.round_to)
        elif cfg.scope is PruneScope.GLOBAL:
            counts = global_counts(chosen, sc, cfg.ratio, cfg.round_to, cfg.normalize)
        else:
            counts = layer_counts(chosen, {g.name: cfg.ratio for g in chosen}, cfg.round_to)
        keeps = {g.name: top_units(sc[g.name], counts[g.name]) for g in chosen}
    if cfg.proj_ratio is not None:
        proj = [g for g in groups if g.kind is GroupKind.PROJ and (cfg.layers is None or any(
            g.module == h.module and g.layer == h.layer for h in chosen))]
        for g in proj:
            if g.blocked:
                skipped[g.name] = g.blocked
        proj = [g for g in proj if not g.blocked]
        counts = layer_counts(proj, {g.name: cfg.proj_ratio for g in proj}, cfg.round_to)
        keeps.update({g.name: top_units(unit_scores(model, g, scores, l2), counts[g.name]) for g in proj})
    if cfg.embed_ratio is not None:
        keeps.update(_select_embed(model, groups, cfg, scores))
    return keeps, skipped


def _select_embed(model: nn.Module, groups: list[UnitGroup], cfg: UnitPruningFields, scores) -> dict[str, Tensor]:
    """Kept features of every embedding (EMBED) group: the top (1 - embed_ratio) by score."""
    embed = [g for g in groups if g.kind is GroupKind.EMBED]
    if not embed:
        raise CouplingError("embed_ratio: no nn.Embedding or input nn.Linear feeding a recurrent layer was found"
                            " (found with torch.fx only; a model fx cannot trace keeps its embedding width)")
    for g in embed:
        if g.blocked:
            raise _blocked_error(g)
    counts = layer_counts(embed, {g.name: cfg.embed_ratio for g in embed}, cfg.round_to)
    l2 = cfg.reduce is UnitReduce.L2
    return {g.name: top_units(unit_scores(model, g, scores, l2), counts[g.name]) for g in embed}


def _edit(model: nn.Module, groups: list[UnitGroup], graph: CouplingGraph, keeps: dict[str, Tensor],
          example_inputs, consumers) -> StructuredResult:
    by_name = {g.name: g for g in groups}
    cuts = [by_name[name].cut(k) for name, k in keeps.items() if len(k) < by_name[name].size]
    result = StructuredResult({c.group.name: c.keep.tolist() for c in cuts},
                         {c.group.name: (c.group.size, len(c.keep)) for c in cuts}, dict(graph.recurrent),
                         params_before=n_params(model))
    for c in cuts:
        if c.group.blocked:
            raise _blocked_error(c.group)
    if cuts:
        with atomic_edit(model):  # a failed cut or run check leaves the model exactly as it was
            apply_cuts_(model, cuts)
            exits_cut = resize_exit_heads(model)
            changes = [SizeChange(c.group.name, c.group.kind, c.group.module, c.group.size, len(c.keep)) for c in cuts]
            result.updated_attributes, result.stale_attributes = update_size_attributes_(model, changes)
            result.warnings += [f"updated {a} {old} -> {new}" for a, (old, new) in result.updated_attributes.items()]
            result.warnings += [f"check: {s}" for s in result.stale_attributes]
            record = {"op": "prune_units", "keep": result.keeps, "sizes": {k: list(v) for k, v in result.sizes.items()}}
            if result.updated_attributes:
                record["attributes"] = result.updated_attributes
            if consumers:
                record["consumers"] = {k: list(v) for k, v in consumers.items()}
            if exits_cut:
                record["early_exit"] = exits_cut
            append_history(model, record)
            if example_inputs is not None:
                check_runs(model, example_inputs, graph, result.stale_attributes)
    result.params_after = n_params(model)
    return result


def append_history(model: nn.Module, record: dict) -> None:
    if not isinstance(getattr(model, "history", None), list):
        model.history = []
    model.history.append(record)


def example_inputs_for(model: nn.Module, example_inputs: ExampleInputs | None) -> tuple | None:
    """The forward arguments for `model` as it is now: a callable is called on it (after a cut it
    builds inputs of the new sizes, e.g. `lambda m: (x, m.init_hidden(4))`); one tensor becomes (x,)."""
    if example_inputs is None:
        return None
    inputs = example_inputs(model) if callable(example_inputs) else example_inputs
    return inputs if isinstance(inputs, tuple) else (inputs,)


def check_runs(model: nn.Module, example_inputs: ExampleInputs, graph: CouplingGraph | None = None,
               stale: list[str] | None = None) -> None:
    """Run the edited model once; a failure usually means forward hard-codes a size. A callable
    `example_inputs` builds the inputs from the edited model first (its failure counts too)."""
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(*example_inputs_for(model, example_inputs))
    except Exception as e:
        notes = list(graph.notes if graph else []) + list(stale or [])
        if not callable(example_inputs):
            notes.append("if the example inputs hold a state built for the old sizes (e.g. model.init_hidden(b)), "
                         "pass a callable that builds them from the model: example_inputs=lambda m: "
                         "(x, m.init_hidden(b))")
        notes = "\n  ".join(notes)
        raise RuntimeError(f"the pruned model no longer runs on the example inputs ({type(e).__name__}: {e}). Its "
                           "forward probably hard-codes a layer size (e.g. the initial state or a reshape); the "
                           "model is left as it was: update what names the old size and cut again."
                           + (f"\n  {notes}" if notes else "")) from e
    finally:
        model.train(was)


def _exit_inputs(model: nn.Module) -> list[tuple[int, str, nn.Linear]]:
    """[(layer k, path, Linear)] of the first Linear of each rnnslim.early_exit head: head k
    reads the readout of recurrent layer k (rnn.layers.k), all of its output features."""
    exits = getattr(model, "exits", None)
    if exits is None:
        return []
    out = []
    for k, head in enumerate(exits.heads):
        first, suffix = (head, "") if isinstance(head, nn.Linear) else (head[0], ".0")
        out.append((k, f"exits.heads.{k}{suffix}", first))
    return out


def add_exit_heads(model: nn.Module, graph: CouplingGraph) -> CouplingGraph:
    """Early-exit heads are not in the model's forward (routed inference calls them), so no
    trace finds them: add each head's first Linear as a consumer of its layer's units, so a
    cut removes the matching input columns of the head too."""
    for k, path, linear in _exit_inputs(model):
        rm = graph.recurrent.get(f"rnn.layers.{k}")
        feats = rm.out_feats() if rm is not None else ()
        if len(feats) != linear.in_features:
            raise ValueError(f"early-exit head {path} reads {linear.in_features} features but rnn.layers.{k} outputs "
                             f"{len(feats)}; the heads no longer match the model (add the exits again)")
        graph.consumers[path] = Consumer(path, ConsumerKind.LINEAR, tuple(feats))
    return graph


def resize_exit_heads(model: nn.Module) -> dict | None:
    """After a cut: the heads' recorded input widths follow their Linears, and calibrated exit
    thresholds are cleared (they were chosen for the heads before the cut; calibrate again)."""
    heads = _exit_inputs(model)
    if not heads:
        return None
    exits = model.exits
    sizes = [linear.in_features for _, _, linear in heads]
    was = {"threshold": exits.cfg.threshold, "stream_threshold": exits.cfg.stream_threshold}
    exits.cfg = exits.cfg.model_copy(update={"in_sizes": sizes, "threshold": None, "stream_threshold": None})
    return {"in_sizes": sizes, "thresholds_cleared": {k: v for k, v in was.items() if v is not None}}


def prune_units_(model: nn.Module, cfg: StructuredPruning, *, scores: dict[str, Tensor] | None = None,
                 calibration=None, example_inputs: ExampleInputs | None = None,
                 consumers: dict[str, list[str]] | None = None) -> StructuredResult:
    """Remove hidden units chosen by `cfg` from every recurrent layer (physically, in place).

    scores: per-weight importance {param name: tensor}; default from cfg.criterion (|W|
    for magnitude; taylor/fisher/activation need `calibration`, a Task or batches).
    example_inputs: for models torch.fx cannot trace, and to check the result runs: a tuple of
    forward arguments, or a callable `model -> tuple` called before the cut and again after it
    (so a state from the user's init_hidden has the new sizes).
    consumers: declared coupling {recurrent module: [consumer modules]} (see graph/).
    """
    if example_inputs is not None and not (isinstance(example_inputs, tuple) or callable(example_inputs)):
        example_inputs = (example_inputs,)
    graph = add_exit_heads(model, discover_coupling(model, example_inputs_for(model, example_inputs), consumers,
                                                    strict=False))
    groups = build_groups(model, graph)
    if scores is None and cfg.criterion is not Criterion.MAGNITUDE:
        wanted = [g for g in groups if g.kind is not GroupKind.EMBED or cfg.embed_ratio is not None]
        names = sorted({s.param for g in wanted for s in g.slices})
        scores = score_model(model, cfg.criterion, calibration, names=names, n_batches=cfg.calibration_batches)
    keeps, skipped = _select(model, groups, cfg, scores)
    result = _edit(model, groups, graph, keeps, example_inputs, consumers)
    result.skipped = skipped
    return result


@register(Family.PRUNE, StructuredPruning)
def _prune_dispatch(model: nn.Module, cfg: StructuredPruning, calibration=None, example_inputs=None,
                    consumers=None) -> StructuredResult:
    """rnnslim.prune_(model, StructuredPruning(...), example_inputs=..., calibration=...)."""
    return prune_units_(model, cfg, calibration=calibration, example_inputs=example_inputs, consumers=consumers)


def keep_units_(model: nn.Module, keep: dict[int | str, Sequence[int]], *, example_inputs: ExampleInputs | None = None,
                consumers: dict[str, list[str]] | None = None) -> StructuredResult:
    """Keep exactly the given units of the given groups (everything else in those groups goes)."""
    if example_inputs is not None and not (isinstance(example_inputs, tuple) or callable(example_inputs)):
        example_inputs = (example_inputs,)
    graph = add_exit_heads(model, discover_coupling(model, example_inputs_for(model, example_inputs), consumers,
                                                    strict=False))
    groups = build_groups(model, graph)
    resolved = resolve_keys(groups, list(keep), kinds=tuple(GroupKind))
    keeps = {}
    for key, gs in resolved.items():
        if len(gs) != 1:
            raise KeyError(f"{key!r} names {len(gs)} groups {[g.name for g in gs]}; give one group name per entry")
        keeps[gs[0].name] = gs[0].cut(keep[key]).keep
    return _edit(model, groups, graph, keeps, example_inputs, consumers)
