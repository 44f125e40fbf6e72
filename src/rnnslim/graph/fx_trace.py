"""Coupling discovery with torch.fx: follow the feature dimension of every recurrent output.

The model is traced symbolically (recurrent modules, Linear, Conv1d, ... stay leaves) and
every node gets a tag saying where recurrent units sit in its value (graph/fx_ops.py).
Ops that keep features apart (element-wise functions, indexing other dims, cat, permute,
reductions over time or batch, reshapes that keep the last dim intact) propagate the tag;
a Linear / Conv1d / recurrent module that receives a tagged input becomes a consumer. Any
other op (matmul, attention, flatten of features, per-feature parameters, slicing the
features with constants that would be wrong after pruning) marks the recurrent module as
unresolved with the node and the reason. With example inputs, ShapeProp gives shapes;
without them recurrent inputs are assumed batched (3-D).
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from rnnslim.graph.coupling import (
    Consumer,
    ConsumerKind,
    CouplingGraph,
    RecurrentModule,
)
from rnnslim.graph.fx_ops import (
    ALONG,
    BINARY,
    FACTORIES,
    KNOWN,
    PASSTHROUGH_MODULES,
    REDUCE,
    UNARY,
    Feat,
    FeatureOps,
    Parts,
    Poison,
    RnnOut,
    RnnState,
    _fn_name,
    _norm,
)


class FxAnalyzer(FeatureOps):
    def __init__(self, gm: fx.GraphModule, recurrent: dict[str, RecurrentModule]) -> None:
        super().__init__(gm, recurrent, method="fx")
        self.untagged_calls: set[str] = set()

    def run(self) -> CouplingGraph:
        for node in self.gm.graph.nodes:
            tags = self.all_tags(node)
            if node.op == "output":
                self.output(node, tags)
                continue
            if any(isinstance(t, Poison) for t in tags):
                self.env[node] = Poison(frozenset(set().union(*(self.paths(t) for t in tags))))
            elif node.op == "call_module":
                self.env[node] = self.call_module(node, tags)
            elif node.op in ("call_function", "call_method"):
                self.env[node] = self.call_function(node, tags) if tags else None
            else:
                self.env[node] = None
        return self.graph

    def output(self, node: fx.Node, tags) -> None:
        def visit(t):
            if isinstance(t, Feat):
                for s in t.feats:
                    if s is not None:
                        self.graph.exposed.setdefault(s[0], f"returned by forward (node '{node.name}')")
            elif isinstance(t, RnnOut):
                visit(Feat(t.rank, t.rank - 1, t.rm.out_feats()))
            elif isinstance(t, Parts):
                for item in (t.items or (t.same,)):
                    visit(item)

        for t in tags:  # returned states (h_n, c_n) are carried state, not features: allowed
            visit(t)

    # --- modules ----------------------------------------------------------------------
    def call_module(self, node: fx.Node, tags):
        mod = self.gm.get_submodule(node.target)
        if isinstance(mod, nn.RNNBase) and node.target in self.recurrent:
            return self.recurrent_call(node, self.recurrent[node.target])
        if not tags:
            if isinstance(mod, (nn.Linear, nn.Conv1d)):
                self.untagged_once(node)
            return None
        x = self.tag(self.arg(node, 0, "input"))
        if isinstance(mod, PASSTHROUGH_MODULES) and isinstance(x, Feat) and len(tags) == 1:
            if isinstance(mod, nn.Dropout1d):
                return self.fail(node, tags, "Dropout1d drops whole channels; rnnslim cannot follow it")
            return x
        if isinstance(mod, nn.Linear) and isinstance(x, Feat) and len(tags) == 1:
            if x.fdim != x.rank - 1:
                return self.fail(node, tags, f"Linear '{node.target}' reads dim -1 but the units are in dim {x.fdim}")
            return self.consume(node, ConsumerKind.LINEAR, x, mod.in_features)
        if isinstance(mod, nn.Conv1d) and isinstance(x, Feat) and len(tags) == 1:
            if x.fdim != x.rank - 2 or mod.groups != 1:
                return self.fail(node, tags, f"Conv1d '{node.target}' needs the units in its channel dim "
                                             "(and groups=1)")
            return self.consume(node, ConsumerKind.CONV1D, x, mod.in_channels)
        return self.fail(node, tags, f"module '{node.target}' ({type(mod).__name__}) receives the features; rnnslim "
                                     "slices only Linear, Conv1d and recurrent consumers and element-wise modules")

    def consume(self, node: fx.Node, kind: ConsumerKind, x: Feat, expected: int):
        if len(x.feats) != expected:
            return self.fail(node, [x], f"'{node.target}' expects {expected} input features, the trace found "
                                        f"{len(x.feats)}")
        c = Consumer(node.target, kind, x.feats)
        old = self.graph.consumers.get(node.target)
        if (old is not None and old.feats != c.feats) or node.target in self.untagged_calls:
            return self.fail(node, [x], f"'{node.target}' is called more than once with different inputs")
        self.graph.consumers[node.target] = c
        return None

    def recurrent_call(self, node: fx.Node, rm: RecurrentModule):
        x_node, hx_node = self.arg(node, 0, "input"), self.arg(node, 1, "hx")
        x = self.tag(x_node)
        hx_tags = []
        fx.node.map_arg(hx_node, lambda n: hx_tags.append(self.env.get(n)) or n)
        shape = self.shape(x_node)
        rank = len(shape) if shape is not None else (x.rank if isinstance(x, Feat) else 3)
        for t in hx_tags:
            if t is None or (isinstance(t, RnnState) and t.rm.path == rm.path):
                continue  # zero / user state, or its own carried state
            return self.fail(node, [t, RnnOut(rm, rank)], f"the initial state of '{rm.path}' comes from "
                                                          "another recurrent layer, which couples their units")
        self.note_constant_state(hx_node, rm)
        if isinstance(x, Feat):
            if x.fdim != x.rank - 1:
                return self.fail(node, [x, RnnOut(rm, rank)],
                                 f"'{rm.path}' reads dim -1 but the units are in dim {x.fdim}")
            if isinstance(self.consume(node, ConsumerKind.RECURRENT, x, rm.input_size), Poison):
                return Poison(frozenset({rm.path}) | self.paths(x))
        elif x is not None:
            return self.fail(node, [x, RnnOut(rm, rank)], f"unsupported input to '{rm.path}'")
        else:
            self.untagged_once(node)
        return RnnOut(rm, rank)

    def untagged_once(self, node: fx.Node) -> None:
        """A consumer called without recurrent features: fine unless it also gets them elsewhere."""
        self.untagged_calls.add(node.target)
        old = self.graph.consumers.get(node.target)
        if old is not None:
            self.fail(node, [Feat(1, 0, old.feats)], f"'{node.target}' is called more than once with different inputs")

    def note_constant_state(self, hx_node, rm: RecurrentModule) -> None:
        sizes = {rm.hidden_size, rm.out_units}

        def check(n: fx.Node):
            factory = n.op == "call_function" and n.target in FACTORIES
            if factory or n.op == "call_method" and n.target.startswith("new_"):
                flat: list = []
                fx.node.map_aggregate(n.args, lambda a: flat.append(a) or a)
                if any(isinstance(a, int) and not isinstance(a, bool) and a in sizes for a in flat):
                    self.graph.notes.append(
                        f"forward builds the initial state of '{rm.path}' with a constant size (node '{n.name}'); "
                        f"after pruning it must use the new size (e.g. read {rm.path}.hidden_size at run time)")
            return n

        fx.node.map_arg(hx_node, check)

    # --- functions and methods --------------------------------------------------------
    def call_function(self, node: fx.Node, tags):
        name = _fn_name(node)
        first = self.tag(node.args[0]) if node.args else None
        if name == "getitem":
            return self.getitem(node, first, node.args[1])
        if name in ("size", "dim", "numel", "getattr", "__len__", "len", "type", "is_contiguous") and len(tags) == 1:
            return None
        if isinstance(first, RnnState) or isinstance(first, RnnOut):
            return self.fail(node, tags, f"{name} on the raw output/state tuple of '{first.rm.path}'; only "
                                         "out, h_n[i], c_n[i] are followed")
        if name in ("cat", "stack"):
            return self.cat(node, name, tags)
        if not isinstance(first, Feat):
            if name in BINARY and len(node.args) > 1 and isinstance(self.tag(node.args[1]), Feat):
                return self.binary(node, node.args[1], node.args[0], tags)
            return self.fail(node, tags, f"'{name}' with recurrent features in an unsupported position")
        f = first
        if name not in KNOWN:
            return self.fail(node, tags, f"the features go through '{name}', which rnnslim cannot follow (it may mix "
                                         "or re-arrange units)")
        if name in UNARY:
            return f if len(tags) == 1 else self.fail(node, tags, f"'{name}' combines several recurrent tensors")
        if name in BINARY or (name in ("max", "min") and len(node.args) > 1 and isinstance(node.args[1], fx.Node)):
            other = self.arg(node, 1, "other", self.arg(node, 1, "mask"))
            return self.binary(node, node.args[0], other, tags)
        if len(tags) != 1:
            return self.fail(node, tags, f"'{name}' combines several recurrent tensors")
        if name in ("permute", "transpose", "swapaxes", "swapdims", "t", "movedim", "moveaxis"):
            return self.permute(node, name, f)
        if name in ("unsqueeze", "squeeze", "flatten", "unflatten"):
            return self.dims(node, name, f)
        if name in ("reshape", "view"):
            return self.reshape(node, f)
        if name in REDUCE:
            return self.reduce(node, name, f)
        if name in ALONG or name in ("flip", "roll"):
            dims = self.arg(node, 1, "dim", self.arg(node, 1, "dims"))
            if name == "roll":
                dims = self.arg(node, 2, "dims")
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            if not dims or f.fdim in {_norm(d, f.rank) for d in dims}:
                return self.fail(node, tags, f"'{name}' acts along the feature dim")
            return f
        return self.chunk(node, name, f)  # chunk, split, unbind, tensor_split


def trace_fx(model: nn.Module, example_inputs: tuple | None = None) -> fx.GraphModule:
    """Symbolic trace of `model` (with ShapeProp shapes given example inputs); raises whatever fx raises."""
    gm = fx.symbolic_trace(model)
    if example_inputs is not None:
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(gm).propagate(*example_inputs)
    return gm


def fx_coupling(model: nn.Module, recurrent: dict[str, RecurrentModule], example_inputs: tuple | None = None,
                gm: fx.GraphModule | None = None) -> CouplingGraph:
    """Trace `model` with torch.fx (raises whatever fx raises when it cannot trace)."""
    return FxAnalyzer(gm if gm is not None else trace_fx(model, example_inputs), recurrent).run()
