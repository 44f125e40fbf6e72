"""Coupling discovery by running the model on example inputs (when torch.fx cannot trace it).

Forward hooks cut the autograd graph at every module that owns parameters (recurrent,
Linear, Conv1d, LayerNorm, ...): its outputs are replaced by fresh leaf tensors. What is
left between a recurrent output leaf and the input of a later module is pure functional
code (indexing, cat, activations, ...), so data flow can be read from gradients:

    input feature j of consumer C depends on unit u of group G
        <=>  d C.input[..., j] / d out[..., u] is non-zero somewhere in the example.

Each consumer input feature must depend on at most one (group, unit); anything else
(several units, a module rnnslim cannot slice, a parameter used on the way that would need
slicing) marks the recurrent module unresolved. Limits: the example must exercise the
real path (a ReLU that is zero everywhere hides a dependency), and constants in forward
that encode sizes are not seen here; check the pruned model on the example afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnslim.graph.coupling import (
    Consumer,
    ConsumerKind,
    CouplingGraph,
    GroupKind,
    RecurrentModule,
    Source,
)
from rnnslim.graph.fx_ops import PASSTHROUGH_MODULES
from rnnslim.utils.params import weight_parameters


@dataclass
class _Call:
    path: str
    module: nn.Module
    inputs: list[Tensor]  # positional tensor inputs as the module received them
    leaves: list[Tensor]  # our replacement outputs (detached, requires_grad)


def _tensors(obj) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, PackedSequence):  # only its data carries features
        return [obj.data]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _replace(obj):
    if isinstance(obj, Tensor):
        return obj.detach().requires_grad_(obj.is_floating_point())
    if isinstance(obj, PackedSequence):
        return PackedSequence(_replace(obj.data), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices)
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_replace(o) for o in obj)
    if isinstance(obj, list):
        return [_replace(o) for o in obj]
    raise TypeError(f"unsupported module output {type(obj).__name__}")


def _is_cut(m: nn.Module) -> bool:
    """Modules whose outputs become fresh leaves: consumers and parameterised leaf modules."""
    if isinstance(m, (nn.RNNBase, nn.Linear, nn.Conv1d)):
        return True
    is_leaf = next(m.children(), None) is None
    return is_leaf and not isinstance(m, PASSTHROUGH_MODULES) and any(True for _ in weight_parameters(m, recurse=False))


class _SourceMap:
    """Maps a gradient on a recurrent leaf to the (group, unit) pairs it touches."""

    def __init__(self, rm: RecurrentModule, role: str) -> None:
        self.rm, self.role = rm, role  # role: "out", "h" or "c"

    def sources(self, grad: Tensor) -> list[set[Source]]:
        rm, g = self.rm, grad.abs()
        if self.role == "out":  # (..., D*P): feature f -> unit f % P of the last layer's output group
            hit = g.reshape(-1, g.shape[-1]).sum(0) > 0
            feats = rm.out_feats()
            return [{feats[f]} for f in torch.nonzero(hit).flatten().tolist()]
        # h_n / c_n: (L*D, [B,] n) -> (layer, unit)
        hit = g.reshape(g.shape[0], -1, g.shape[-1]).sum(1) > 0
        out = []
        for i, k in torch.nonzero(hit).tolist():
            layer = i // rm.directions
            name = rm.group_name(layer, rm.out_kind) if self.role == "h" else rm.group_name(layer)
            out.append({(name, k)})
        return out


def trace_coupling(model: nn.Module, recurrent: dict[str, RecurrentModule], example_inputs: tuple) -> CouplingGraph:
    """Run `model` on `example_inputs` with its parameterised modules cut (module docstring) and
    read from gradients which recurrent units feed which input feature of every consumer."""
    graph = CouplingGraph(recurrent=dict(recurrent), method="trace")
    calls, result = _record_calls(model, recurrent, example_inputs)
    tracer = _Tracer(model, recurrent, calls, graph)
    if not tracer.leaves:
        return graph
    for c in calls:
        if c.inputs:
            tracer.add_consumer(c)
    tracer.mark_exposed(result)
    return graph


def _record_calls(model: nn.Module, recurrent: dict[str, RecurrentModule], example_inputs: tuple):
    """(the calls of every cut module in call order, the model's output) of one forward pass."""
    calls: list[_Call] = []
    handles = []

    def hook(path):
        def fn(module, args, output):
            new = _replace(output)
            calls.append(_Call(path, module, _tensors(args), _tensors(new)))
            return new
        return fn

    for path, m in model.named_modules():
        if path and _is_cut(m) and not any(path.startswith(r + ".") for r in recurrent):
            handles.append(m.register_forward_hook(hook(path)))
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            result = model(*example_inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return calls, result


class _Tracer:
    """Reads the data flow of one recorded forward pass from gradients and fills `graph`."""

    def __init__(self, model: nn.Module, recurrent: dict[str, RecurrentModule], calls: list[_Call],
                 graph: CouplingGraph) -> None:
        self.graph = graph
        # recurrent leaves: the output sequence, h_n and (LSTM) c_n of every recurrent call
        self.leaves: list[tuple[Tensor, _SourceMap]] = []
        for c in calls:
            if c.path in recurrent:
                roles = ["out", "h", "c"][: len(c.leaves)]
                self.leaves += [(t, _SourceMap(recurrent[c.path], r)) for t, r in zip(c.leaves, roles)]
        self.leaf_ts = [t for t, _ in self.leaves]
        self.leaf_ids = {id(t) for t in self.leaf_ts}
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.owner = {rm.group_name(layer, kind): rm.path for rm in recurrent.values()
                      for layer in range(rm.num_layers) for kind in GroupKind}

    @staticmethod
    def depends(u: Tensor, on: list[Tensor]) -> list[Tensor | None]:
        if not u.requires_grad:
            return [None] * len(on)
        return list(torch.autograd.grad(u, on, grad_outputs=torch.randn_like(u), retain_graph=True, allow_unused=True))

    def sources_of(self, u: Tensor) -> set[Source]:
        out: set[Source] = set()
        for g, (_, smap) in zip(self.depends(u, self.leaf_ts), self.leaves):
            if g is not None:
                for s in smap.sources(g):
                    out |= s
        return out

    def owner_paths(self, srcs) -> set[str]:
        return {self.owner[s[0]] for s in srcs}

    def unresolved(self, paths, msg: str) -> None:
        for p in paths:
            self.graph.unresolved.setdefault(p, []).append(msg)

    def check_initial_states(self, c: _Call) -> None:
        """Initial states of a recurrent call: only the module's own carried state is allowed."""
        for s in c.inputs[1:]:
            srcs = self.sources_of(s) if id(s) not in self.leaf_ids else set()
            own = [sm for t, sm in self.leaves if t is s]
            if srcs or (own and own[0].rm.path != c.path):
                self.unresolved(self.owner_paths(srcs) | {c.path} | {sm.rm.path for sm in own},
                                f"the initial state of '{c.path}' comes from another recurrent layer")

    def add_consumer(self, c: _Call) -> None:
        """Record which unit feeds each input feature of call `c`, or why that cannot be sliced."""
        kind = {nn.Linear: ConsumerKind.LINEAR, nn.Conv1d: ConsumerKind.CONV1D}.get(type(c.module))
        if isinstance(c.module, nn.RNNBase):
            kind = ConsumerKind.RECURRENT
            self.check_initial_states(c)
        x = c.inputs[0]
        srcs = self.sources_of(x)
        if not srcs:
            return
        if kind is None:
            self.unresolved(self.owner_paths(srcs), f"module '{c.path}' ({type(c.module).__name__}) receives the "
                                                    "features; rnnslim slices only Linear, Conv1d and recurrent consumers")
            return
        grads = self.depends(x, [p for _, p in self.params])
        used = [n for (n, _), g in zip(self.params, grads) if g is not None and g.abs().sum() > 0]
        if used:
            self.unresolved(self.owner_paths(srcs), f"parameters {used[:3]} are applied to the features on the way "
                                                    f"to '{c.path}'; they would need pruning too")
            return
        fdim = x.dim() - 2 if kind is ConsumerKind.CONV1D else x.dim() - 1  # Conv1d: ([B,] C, L)
        feats: list[Source | None] = []
        for j in range(x.shape[fdim]):
            s = self.sources_of(x.select(fdim, j))
            if len(s) > 1:
                self.unresolved(self.owner_paths(s), f"input feature {j} of '{c.path}' mixes several units: "
                                                     f"{sorted(s)[:4]}")
                return
            feats.append(next(iter(s)) if s else None)
        old = self.graph.consumers.get(c.path)
        if old is not None and old.feats != tuple(feats):
            self.unresolved(self.owner_paths(srcs), f"'{c.path}' is called more than once with different inputs")
        self.graph.consumers[c.path] = Consumer(c.path, kind, tuple(feats))

    def mark_exposed(self, result) -> None:
        """Units returned by forward as features (not as carried final state) cannot be removed silently."""
        for t in _tensors(result):
            if id(t) in self.leaf_ids and any(t is lt and sm.role != "out" for lt, sm in self.leaves):
                continue  # a returned final state is carried state, not features
            for s in self.sources_of(t) if t.requires_grad else ():
                self.graph.exposed.setdefault(s[0], "returned by forward")
