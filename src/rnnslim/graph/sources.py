"""Feature sources: the embedding (or input Linear) whose output features recurrent layer 0 reads.

    graph.sources = find_sources(model, graph, trace_fx(model, example_inputs))   # {path: FeatureSource}

The same torch.fx tag propagation as graph/fx_trace.py, run from the other end: every
nn.Embedding, and every nn.Linear that does not already read recurrent units, tags its
output as E features (group named by its module path); the tags follow element-wise ops,
dropout, permutes, ... to the modules that read them. A candidate whose features reach at
least one recurrent module's input is a source; it is `blocked` when its features are
returned by forward or go through an op rnnslim cannot follow (also when that op is on
the way to the recurrent input, e.g. a LayerNorm). Recurrent outputs carry no
tag here (graph/fx_trace.py follows those). Without example inputs, an embedding / Linear
output is assumed batched (3-D, features last).

Only torch.fx: for a model fx cannot trace no source is found (a note says so), so its
embedding width cannot be cut (hidden units still can, via the traced fallback).
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

from rnnslim.graph.coupling import ConsumerKind, CouplingGraph, FeatureSource, RecurrentModule, SourceKind
from rnnslim.graph.fx_ops import Feat, Poison
from rnnslim.graph.fx_trace import FxAnalyzer


class SourceAnalyzer(FxAnalyzer):
    """Tags candidate sources' outputs; recurrent modules consume them and emit nothing."""

    def __init__(self, gm: fx.GraphModule, recurrent: dict[str, RecurrentModule],
                 candidates: dict[str, SourceKind]) -> None:
        super().__init__(gm, recurrent)
        self.candidates = candidates
        self.owner.update({path: path for path in candidates})  # group name = module path
        self.reached: set[str] = set()  # candidates whose lost (Poison) features reach a recurrent input

    def run(self) -> CouplingGraph:
        """The walk; then `reached`: candidates whose features got lost on the way to a recurrent
        input (a Poison tag there), so they are sources too, blocked."""
        graph = super().run()
        for node in self.gm.graph.nodes:
            if node.op == "call_module" and node.target in self.recurrent:
                for t in self.all_tags(node):
                    self.reached |= set(t.paths) if isinstance(t, Poison) else set()
        return graph

    def call_module(self, node: fx.Node, tags):
        if node.target not in self.candidates:
            return super().call_module(node, tags)
        if tags:  # a Linear reading another source's features: a consumer of that one
            if isinstance(super().call_module(node, tags), Poison):
                return Poison(frozenset({node.target}) | set().union(*(self.paths(t) for t in tags)))
        mod = self.gm.get_submodule(node.target)
        width = mod.embedding_dim if isinstance(mod, nn.Embedding) else mod.out_features
        shape = self.shape(node)
        rank = len(shape) if shape is not None else 3  # (T, B, E) / (B, T, E) assumed
        return Feat(rank, rank - 1, tuple((node.target, j) for j in range(width)))

    def recurrent_call(self, node: fx.Node, rm: RecurrentModule):
        x = self.tag(self.arg(node, 0, "input"))
        hx = []
        fx.node.map_arg(self.arg(node, 1, "hx"), lambda n: hx.append(self.env.get(n)) or n)
        if any(t is not None for t in hx):
            return self.fail(node, [t for t in hx if t is not None], f"the initial state of '{rm.path}' is made "
                                                                      "from the features")
        if isinstance(x, Feat):
            if x.fdim != x.rank - 1:
                return self.fail(node, [x], f"'{rm.path}' reads dim -1 but the features are in dim {x.fdim}")
            if isinstance(self.consume(node, ConsumerKind.RECURRENT, x, rm.input_size), Poison):
                return Poison(frozenset(self.paths(x)))
        elif x is not None:
            return self.fail(node, [x], f"unsupported input to '{rm.path}'")
        else:
            self.untagged_once(node)
        return None  # recurrent outputs are not followed here


def _candidates(model: nn.Module, graph: CouplingGraph) -> dict[str, SourceKind]:
    """Every nn.Embedding, and every nn.Linear that is not a consumer of recurrent units."""
    out = {}
    for path, m in model.named_modules():
        if type(m) is nn.Embedding:
            out[path] = SourceKind.EMBEDDING
        elif type(m) is nn.Linear and path not in graph.consumers:
            out[path] = SourceKind.LINEAR
    return out


def _collect(an: SourceAnalyzer, model: nn.Module) -> dict[str, FeatureSource]:
    """Candidates that reach a recurrent input, with their consumers and why they are blocked."""
    out = {}
    for path, kind in an.candidates.items():
        cons = {c.path: c for c in an.graph.consumers.values() if path in c.groups()}
        if not any(c.kind is ConsumerKind.RECURRENT for c in cons.values()) and path not in an.reached:
            continue
        mod = model.get_submodule(path)
        why = []
        if path in an.graph.exposed:
            why.append(f"its features reach the model's output directly ({an.graph.exposed[path]})")
        why += an.graph.unresolved.get(path, [])
        size = mod.embedding_dim if kind is SourceKind.EMBEDDING else mod.out_features
        out[path] = FeatureSource(path, kind, size, cons, "; ".join(why) or None)
    return out


def find_sources(model: nn.Module, graph: CouplingGraph, gm: fx.GraphModule) -> dict[str, FeatureSource]:
    """The feature sources of `model` (see module doc) from its fx trace `gm` (graph/fx_trace.trace_fx)."""
    candidates = _candidates(model, graph)
    if not candidates:
        return {}
    an = SourceAnalyzer(gm, graph.recurrent, candidates)
    an.run()
    return _collect(an, model)
