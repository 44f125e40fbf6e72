"""How tensor ops move recurrent features (the tags of graph/fx_trace.py).

A traced value's tag says where recurrent units sit in it:

    Feat(rank, fdim, feats)   a tensor whose dim `fdim` carries features; feats[j] is the
                              (group, unit) of position j, or None
    RnnOut / RnnState         the (output, state) tuple of a recurrent call, its h_n / c_n
    Parts                     a tuple of tagged values (chunk, max(dim), ...)
    Poison                    something already reported as unresolved

`FeatureOps` holds one rule per op family: indexing, element-wise binary ops, cat/stack,
permutes, (un)squeeze/flatten, reshape/view, reductions, chunk. A rule returns the tag of
the op's result, or reports the recurrent modules involved as unresolved (`fail`) when
the op mixes units, or uses constants that pruning would make wrong.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from rnnslim.graph.coupling import CouplingGraph, GroupKind, RecurrentModule, Source


@dataclass(frozen=True)
class Feat:
    rank: int
    fdim: int
    feats: tuple[Source | None, ...]


@dataclass(frozen=True)
class RnnOut:
    rm: RecurrentModule
    rank: int


@dataclass(frozen=True)
class RnnState:
    rm: RecurrentModule
    which: str  # "hc" (LSTM tuple), "h" or "c"
    rank: int


@dataclass(frozen=True)
class Parts:
    items: tuple
    same: object = None  # when set, every item is this tag (chunks along a non-feature dim)


@dataclass(frozen=True)
class Poison:
    paths: frozenset


PASSTHROUGH_MODULES = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SELU, nn.LeakyReLU, nn.SiLU, nn.Mish,
                       nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity, nn.Hardtanh, nn.ReLU6, nn.Softsign,
                       nn.Softplus, nn.LogSigmoid, nn.Tanhshrink, nn.Hardswish, nn.Hardsigmoid, nn.CELU)
UNARY = {"relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_", "gelu", "elu", "selu", "celu", "leaky_relu", "silu",
         "mish", "softsign", "softplus", "hardtanh", "relu6", "hardswish", "hardsigmoid", "logsigmoid", "tanhshrink",
         "dropout", "alpha_dropout", "abs", "neg", "exp", "log", "log1p", "sqrt", "rsqrt", "square", "sin", "cos",
         "clamp", "clip", "clamp_min", "clamp_max", "contiguous", "clone", "detach", "float", "double", "half",
         "bfloat16", "to", "type_as", "sign", "floor", "ceil", "round", "pow", "erf", "reciprocal", "cpu", "cuda",
         "requires_grad_"}
BINARY = {"add", "sub", "mul", "div", "true_divide", "truediv", "floordiv", "maximum", "minimum", "radd", "rsub",
          "rmul",
          "masked_fill", "add_", "mul_", "sub_", "div_"}
REDUCE = {"mean", "sum", "amax", "amin", "prod", "std", "var", "logsumexp", "nanmean", "nansum", "max", "min", "median",
          "norm"}
ALONG = {"softmax", "log_softmax", "cumsum", "cumprod"}  # act along one dim, keep the others apart
SHAPE_OPS = {"permute", "transpose", "swapaxes", "swapdims", "t", "movedim", "moveaxis", "unsqueeze", "squeeze",
             "flatten", "unflatten", "reshape", "view", "flip", "roll", "chunk", "split", "unbind", "tensor_split"}
KNOWN = UNARY | BINARY | REDUCE | ALONG | SHAPE_OPS
FACTORIES = {torch.zeros, torch.ones, torch.randn, torch.rand, torch.empty, torch.full}


def _fn_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return node.target
    t = node.target
    special = {operator.getitem: "getitem", operator.add: "add", operator.sub: "sub", operator.mul: "mul",
               operator.truediv: "truediv", operator.floordiv: "floordiv", operator.neg: "neg", getattr: "getattr",
               torch.concat: "cat", torch.concatenate: "cat"}
    if t in special:
        return special[t]
    return getattr(t, "__name__", str(t))


def _describe(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"module '{node.target}'"
    if node.op == "call_method":
        return f"Tensor.{node.target}(...)"
    mod = getattr(node.target, "__module__", None) or ("torch" if "torch" in repr(node.target) else "")
    return f"{mod + '.' if mod else ''}{_fn_name(node)}(...)"


def _norm(d: int, rank: int) -> int:
    if not -rank <= d < rank:
        raise IndexError(f"dim {d} out of range for rank {rank}")
    return d % rank


class FeatureOps:
    """Tag propagation through tensor ops; FxAnalyzer adds modules and the graph walk."""

    def __init__(self, gm: fx.GraphModule, recurrent: dict[str, RecurrentModule], method: str = "fx") -> None:
        self.gm = gm
        self.recurrent = recurrent
        self.owner = {rm.group_name(layer, kind): rm.path for rm in recurrent.values()
                      for layer in range(rm.num_layers) for kind in GroupKind}
        self.env: dict[fx.Node, object] = {}
        self.graph = CouplingGraph(recurrent=dict(recurrent), method=method)

    def paths(self, tag) -> set[str]:
        if isinstance(tag, Feat):
            return {self.owner[s[0]] for s in tag.feats if s is not None}
        if isinstance(tag, (RnnOut, RnnState)):
            return {tag.rm.path}
        if isinstance(tag, Parts):
            return set().union(*(self.paths(t) for t in tag.items)) if tag.items else self.paths(tag.same)
        if isinstance(tag, Poison):
            return set(tag.paths)
        return set()

    def fail(self, node: fx.Node, tags, msg: str) -> Poison:
        paths = set().union(*(self.paths(t) for t in tags))
        for p in paths:
            self.graph.unresolved.setdefault(p, []).append(f"at node '{node.name}' = {_describe(node)}: {msg}")
        return Poison(frozenset(paths))

    def shape(self, arg) -> tuple | None:
        if isinstance(arg, fx.Node):
            meta = arg.meta.get("tensor_meta")
            if meta is not None and hasattr(meta, "shape"):
                return tuple(meta.shape)
            if arg.op == "get_attr":
                t = self.gm
                for part in arg.target.split("."):
                    t = getattr(t, part)
                return tuple(t.shape) if isinstance(t, torch.Tensor) else None
        return None

    def tag(self, arg):
        return self.env.get(arg) if isinstance(arg, fx.Node) else None

    def all_tags(self, node: fx.Node) -> list:
        out = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: out.append(self.env.get(n)) or n)
        return [t for t in out if t is not None]

    def arg(self, node: fx.Node, i: int, name: str, default=None):
        if len(node.args) > i:
            return node.args[i]
        return node.kwargs.get(name, default)

    # --- op rules -----------------------------------------------------------------------
    def getitem(self, node: fx.Node, obj, idx):
        if isinstance(obj, RnnOut):
            if idx == 0:
                return Feat(obj.rank, obj.rank - 1, obj.rm.out_feats())
            return RnnState(obj.rm, "hc" if obj.rm.cell.value == "lstm" else "h", obj.rank)
        if isinstance(obj, RnnState):
            if obj.which == "hc" and idx in (0, 1):
                return RnnState(obj.rm, "hc"[idx], obj.rank)
            if obj.which in ("h", "c") and isinstance(idx, int):
                rm = obj.rm
                layer = (idx % (rm.num_layers * rm.directions)) // rm.directions
                if obj.which == "h":
                    feats = rm.out_feats(layer)
                else:
                    feats = tuple((rm.group_name(layer), k) for k in range(rm.hidden_size))
                return Feat(obj.rank - 1, obj.rank - 2, feats)
            return self.fail(node, [obj], f"indexes the final state of '{obj.rm.path}' with {idx!r}; only h_n[i] / "
                                          "c_n[i] with a constant i is followed")
        if isinstance(obj, Parts):
            if obj.same is not None:
                return obj.same
            if isinstance(idx, int):
                return obj.items[idx]
            return self.fail(node, [obj], f"indexes a tuple of recurrent tensors with {idx!r}")
        if isinstance(obj, Feat):
            return self.index(node, obj, idx)
        return self.fail(node, self.all_tags(node), "indexing with a recurrent tensor")

    def index(self, node: fx.Node, f: Feat, idx):
        entries = list(idx) if isinstance(idx, tuple) else [idx]
        if any(isinstance(e, fx.Node) or isinstance(e, (list, torch.Tensor)) for e in entries):
            return self.fail(node, [f], "advanced (tensor) indexing of recurrent features")
        consuming = sum(1 for e in entries if e is not None and e is not Ellipsis)
        expanded = []
        for e in entries:
            expanded += [slice(None)] * (f.rank - consuming) if e is Ellipsis else [e]
        in_dim, out_pos, new_fdim = 0, 0, None
        for e in expanded:
            if e is None:
                out_pos += 1
                continue
            if in_dim == f.fdim:
                if isinstance(e, int):
                    return self.fail(node, [f], "selects a single feature of a recurrent output")
                if e != slice(None):
                    return self.fail(node, [f], f"slices the features with constants {e}, which would be wrong after "
                                                "pruning (use x.chunk(2, -1) to split directions)")
                new_fdim = out_pos
            if not isinstance(e, int):
                out_pos += 1
            in_dim += 1
        if new_fdim is None:
            new_fdim = out_pos + (f.fdim - in_dim)
        return Feat(out_pos + (f.rank - in_dim), new_fdim, f.feats)

    def binary(self, node: fx.Node, a_node, b_node, tags):
        a = self.tag(a_node)
        b = self.tag(b_node) if isinstance(b_node, fx.Node) else None
        if isinstance(b, Feat):
            if b.rank - b.fdim != a.rank - a.fdim or b.feats != a.feats:
                return self.fail(node, tags, f"'{node.target}' combines different recurrent features position by "
                                             "position")
            return a if a.rank >= b.rank else b
        if b is not None:
            return self.fail(node, tags, "unsupported operand")
        if not isinstance(b_node, fx.Node):
            return a  # python scalar
        shape = self.shape(b_node)
        if shape is None:
            return self.fail(node, tags, f"combined with tensor '{b_node.name}' of unknown shape (pass "
                                         "example_inputs so rnnslim can check that it does not act per feature)")
        k = len(shape) - (a.rank - a.fdim)
        if k >= 0 and shape[k] != 1:
            return self.fail(node, tags, f"combined with '{b_node.name}' of shape {shape}, which has one value per "
                                         "feature and would need pruning too")
        rank = max(a.rank, len(shape))
        return Feat(rank, rank - (a.rank - a.fdim), a.feats)

    def cat(self, node: fx.Node, name: str, tags):
        items = node.args[0]
        dim = self.arg(node, 1, "dim", 0)
        feats = [self.tag(i) for i in items]
        ref = next((t for t in feats if isinstance(t, Feat)), None)
        if ref is None or any(t is not None and not isinstance(t, Feat) for t in feats):
            return self.fail(node, tags, f"{name} of unsupported values")
        d = _norm(dim, ref.rank + (name == "stack"))
        if name == "cat" and d == ref.fdim:
            out: list = []
            for i, t in zip(items, feats):
                if isinstance(t, Feat):
                    out += t.feats
                    continue
                shape = self.shape(i)
                if shape is None:
                    return self.fail(node, tags, f"cat with '{getattr(i, 'name', i)}' of unknown width "
                                                 "(pass example_inputs)")
                out += [None] * shape[d]
            return Feat(ref.rank, ref.fdim, tuple(out))
        if any(t != ref for t in feats):
            return self.fail(node, tags, f"{name} along dim {dim} of tensors with different features")
        if name == "stack":
            return Feat(ref.rank + 1, ref.fdim + (d <= ref.fdim), ref.feats)
        return ref

    def permute(self, node: fx.Node, name: str, f: Feat):
        rest = list(node.args[1:])
        if name == "permute":
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest or node.kwargs.get("dims")
            order = [_norm(d, f.rank) for d in dims]
            return Feat(f.rank, order.index(f.fdim), f.feats)
        if name == "t":
            return Feat(f.rank, (1 - f.fdim) if f.rank == 2 else f.fdim, f.feats)
        a = _norm(self.arg(node, 1, "dim0", self.arg(node, 1, "source")), f.rank)
        b = _norm(self.arg(node, 2, "dim1", self.arg(node, 2, "destination")), f.rank)
        if name in ("movedim", "moveaxis"):
            order = list(range(f.rank))
            order.insert(b, order.pop(a))
            return Feat(f.rank, order.index(f.fdim), f.feats)
        swap = {a: b, b: a}
        return Feat(f.rank, swap.get(f.fdim, f.fdim), f.feats)

    def dims(self, node: fx.Node, name: str, f: Feat):
        if name == "unsqueeze":
            d = _norm(self.arg(node, 1, "dim"), f.rank + 1)
            return Feat(f.rank + 1, f.fdim + (d <= f.fdim), f.feats)
        if name == "squeeze":
            d = self.arg(node, 1, "dim")
            if d is None:
                shape = self.shape(node)
                if shape is None:
                    return self.fail(node, [f], "squeeze() without a dim needs example_inputs")
                if len(f.feats) == 1:
                    return self.fail(node, [f], "squeeze() may drop a one-unit feature dim")
                return Feat(len(shape), len(shape) - (f.rank - f.fdim), f.feats)
            d = _norm(d, f.rank)
            if d == f.fdim:
                return self.fail(node, [f], "squeezes the feature dim")
            return Feat(f.rank - 1, f.fdim - (d < f.fdim), f.feats)
        if name == "flatten":
            start = _norm(self.arg(node, 1, "start_dim", 0), f.rank)
            end = _norm(self.arg(node, 2, "end_dim", -1), f.rank)
            if start <= f.fdim <= end and start < end:
                return self.fail(node, [f], f"flatten({start}, {end}) merges the features with other dims")
            return Feat(f.rank - (end - start), f.fdim - (end - start) * (f.fdim > end), f.feats)
        d = _norm(self.arg(node, 1, "dim"), f.rank)
        sizes = self.arg(node, 2, "sizes")
        if d == f.fdim:
            return self.fail(node, [f], "unflattens the feature dim")
        return Feat(f.rank + len(sizes) - 1, f.fdim + (len(sizes) - 1) * (f.fdim > d), f.feats)

    def reshape(self, node: fx.Node, f: Feat):
        rest = list(node.args[1:])
        shape_args = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        if not shape_args:
            shape_args = node.kwargs.get("shape") or node.kwargs.get("size") or []
        if f.fdim != f.rank - 1 or not shape_args:
            return self.fail(node, [f], "reshape/view of a tensor whose features are not in its last dim")
        last, width = shape_args[-1], len(f.feats)
        if isinstance(last, int) and last == width and width > 1:
            return self.fail(node, [f], f"reshape/view hard-codes the feature size {width}, which changes with pruning "
                                        "(write x.reshape(..., x.size(-1)))")
        out_shape = self.shape(node)
        ok = out_shape is not None and out_shape[-1] == width
        if out_shape is None and isinstance(last, fx.Node):  # x.size(-1) / x.shape[-1] of a tensor with these features
            src = last
            if src.op == "call_function" and src.target is operator.getitem and isinstance(src.args[0], fx.Node):
                src, dim = src.args[0], src.args[1]
                if src.op == "call_function" and src.target is getattr and src.args[1] == "shape":
                    t = self.tag(src.args[0])
                    ok = (isinstance(t, Feat) and isinstance(dim, int) and _norm(dim, t.rank) == t.fdim
                          and t.feats == f.feats)
            elif src.op == "call_method" and src.target == "size" and len(src.args) > 1:
                t = self.tag(src.args[0])
                ok = isinstance(t, Feat) and isinstance(src.args[1], int) and _norm(src.args[1], t.rank) == t.fdim \
                    and t.feats == f.feats
        if not ok:
            return self.fail(node, [f], "reshape/view that may merge the features with other dims (keep the last dim "
                                        "as x.size(-1), or pass example_inputs so shapes can be checked)")
        return Feat(len(shape_args) if out_shape is None else len(out_shape),
                    (len(shape_args) if out_shape is None else len(out_shape)) - 1, f.feats)

    def reduce(self, node: fx.Node, name: str, f: Feat):
        dim = self.arg(node, 1, "dim")
        if dim is None:
            return self.fail(node, [f], f"'{name}' over all elements mixes the features")
        dims = [dim] if isinstance(dim, int) else list(dim)
        nd = {_norm(d, f.rank) for d in dims}
        if f.fdim in nd:
            return self.fail(node, [f], f"'{name}' reduces over the features")
        keep = self.arg(node, 3 if name in ("std", "var") else 2, "keepdim", False)  # std/var: (dim, unbiased, keepdim)
        out = f if keep else Feat(f.rank - len(nd), f.fdim - sum(1 for d in nd if d < f.fdim), f.feats)
        if name in ("max", "min", "median") and isinstance(dim, int):
            return Parts((out, out))  # (values, indices)
        return out

    def chunk(self, node: fx.Node, name: str, f: Feat):
        dim = self.arg(node, 2, "dim", 0) if name != "unbind" else self.arg(node, 1, "dim", 0)
        if _norm(dim, f.rank) != f.fdim:
            if name == "unbind":
                return Parts((), same=Feat(f.rank - 1, f.fdim - (_norm(dim, f.rank) < f.fdim), f.feats))
            return Parts((), same=f)
        n = self.arg(node, 1, "chunks")
        width = len(f.feats)
        if name != "chunk" or not isinstance(n, int) or width % n:
            return self.fail(node, [f], f"'{name}' along the features with {n!r} uses constants that change with "
                                        "pruning; only x.chunk(n, dim) into identical parts is followed")
        size = width // n
        parts = [f.feats[i:i + size] for i in range(0, width, size)]
        if any(p != parts[0] for p in parts):
            return self.fail(node, [f], "chunk along the features splits different units apart, so the parts would "
                                        "change after pruning")
        return Parts(tuple(Feat(f.rank, f.fdim, p) for p in parts))
