"""Walk a traced forward node by node and give every node a symbolic value (values.py).

The data path must be a chain the SequenceModel can run: an optional Embedding, per-feature
affine maps (Linear, Conv1d, eval BatchNorm1d; a Conv1d with kernel > 1 mixes neighbouring
steps: a CRNN front end), one elementwise activation (ReLU / Tanh / Sigmoid / GELU /
Hardtanh) in front of the first recurrent module, one or more recurrent modules, a
readout (last step / mean over time), affine maps, an optional (log_)softmax over the features,
and layout ops (transpose / permute / view / reshape / flatten / squeeze / unsqueeze /
contiguous) that only re-lay batch and time. Dropout and Identity are skipped (inference).
Anything else that touches the data raises a CaptureError naming the operation and the
user's source line; ops on sizes and constants are allowed (they feed reshapes and zeros).
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from rnnslim.capture.axes import regroup
from rnnslim.capture.errors import CaptureError, refuse, where
from rnnslim.capture.trace import Traced
from rnnslim.capture.values import (
    Activation, Affine, Arg, Bindings, Data, Embed, InputAct, InputState, Meta, Param, ReadoutOp, Recurrent, RnnCall,
    StateOf,
)
from rnnslim.models.window import conv1d_as_linear_weight, window_count
from rnnslim.recurrent.gates import CellType
from rnnslim.recurrent.torch_contract import TorchContractStack

_SKIP_MODULES = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity)
_SKIP_FUNCS = {F.dropout, F.dropout1d, F.alpha_dropout, torch.dropout}
_LAYOUT_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze"}
_LAYOUT_FUNCS = {torch.reshape: "reshape", torch.flatten: "flatten", torch.squeeze: "squeeze",
                 torch.unsqueeze: "unsqueeze"}
_ACTIVATIONS = {F.log_softmax: "log_softmax", torch.log_softmax: "log_softmax", F.softmax: "softmax",
                torch.softmax: "softmax"}
# elementwise activations (captured as ModelSpec.input_activation): module, function and method forms
_ELEMENTWISE_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu",
                        nn.Hardtanh: "hardtanh"}
_ELEMENTWISE_FUNCS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu", torch.tanh: "tanh",
                      F.tanh: "tanh", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.gelu: "gelu",
                      F.hardtanh: "hardtanh", F.hardtanh_: "hardtanh"}
_ELEMENTWISE_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
                        "sigmoid_": "sigmoid"}
_ZEROS = {torch.zeros, torch.zeros_like}
_ZERO_METHODS = {"new_zeros", "zero_"}
_SIZE_METHODS = {"size", "dim", "numel"}


def op_name(node: fx.Node) -> str:
    """How the user wrote the operation: 'torch.add', 'Tensor.matmul', 'module fc (ReLU)'."""
    if node.op == "call_module":
        return f"module {node.target} ({type(node.graph.owning_module.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    t = node.target
    return {operator.add: "+ (residual / add)", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
            operator.matmul: "@ (matmul)", operator.getitem: "indexing"}.get(t, getattr(t, "__qualname__", str(t)))


class Walker:
    def __init__(self, traced: Traced) -> None:
        self.t = traced
        self.gm = traced.gm
        self.env: dict[fx.Node, object] = {}
        self.bind = Bindings()
        self.calls = 0
        self.state_args: dict[str, int] = {}  # forward argument -> recurrent call index it initialises
        self.max_dropout = 0.0
        self.lines: dict[int, str] = {}  # id(op) -> " at file:line (code)" of the node that made it

    # --- helpers ------------------------------------------------------------------------
    def value(self, node) -> object:
        return self.t.values.get(node)

    def shape(self, node) -> tuple[int, ...]:
        return tuple(self.value(node).shape)

    def sym(self, a):
        """The symbolic value of an argument (nodes looked up, containers mapped, constants Meta)."""
        if isinstance(a, fx.Node):
            return self.env[a]
        if isinstance(a, (tuple, list)):
            return type(a)(self.sym(x) for x in a)
        return Meta()

    def as_data(self, v, node: fx.Node | None = None):
        if isinstance(v, Arg):
            value = self.value(node)
            if not isinstance(value, torch.Tensor):
                raise refuse(node, f"argument {v.name!r} is used as data but is not a tensor")
            d = Data(tuple((f"{v.name}:{i}",) for i in range(value.dim())), (), v.name)
            self.bind.note_sizes(d.axes, value)
            return d
        return v

    def data(self, node: fx.Node, axes, ops, source: str) -> Data:
        d = Data(tuple(axes), tuple(ops), source)
        for op in d.ops:
            self.lines.setdefault(id(op), where(node))
        self.bind.note_sizes(d.axes, self.value(node))
        return d

    def feature_axis(self, node: fx.Node, d: Data, axis: int, what: str) -> None:
        """Insist that axis `axis` of `d` holds features (binding an input axis if still open)."""
        group = d.axes[axis]
        if len(group) == 0 and self.shape(node.args[0])[axis] == 1:
            return  # an axis made by unsqueeze: one feature
        if len(group) != 1:
            raise refuse(node, f"{what} reads an axis that merges {self.roles(group)}; capture needs one "
                         "feature axis there")
        label = group[0]
        role = self.bind.role(label)
        if role == "F":
            return
        if label == role and ":" in label:  # an input axis not yet bound
            self.bind.roles[label] = "F"
            return
        raise refuse(node, f"{what} acts on the {_ROLE_NAMES.get(role, role)} axis, not on the features")

    def roles(self, group) -> str:
        return "+".join(self.bind.role(x) for x in group) or "(size 1)"

    # --- the walk ---------------------------------------------------------------------------
    def run(self):
        out = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                v = self.value(node)
                self.env[node] = Arg(self.t.arg_names[len([n for n in self.env if n.op == "placeholder"])]) \
                    if isinstance(v, (torch.Tensor, tuple, list)) else Meta()
            elif node.op == "get_attr":
                self.env[node] = Param(str(node.target))
            elif node.op == "call_module":
                self.env[node] = self.call_module(node)
            elif node.op in ("call_function", "call_method"):
                self.env[node] = self.call(node)
            elif node.op == "output":
                out = node
        return out

    def call_module(self, node: fx.Node):
        m = self.gm.get_submodule(node.target)
        args = [self.sym(a) for a in node.args]
        if isinstance(m, (nn.RNNBase, TorchContractStack)):
            return self.recurrent(node, m, args)
        x = self.as_data(args[0], node.args[0]) if args else None
        if not isinstance(x, Data):
            if any(isinstance(a, (Data, Arg, RnnCall, StateOf)) for a in args):
                raise refuse(node, f"{op_name(node)} is applied to a recurrent state or output tuple; capture "
                             "supports layers on the data path only")
            return Meta()
        if len(node.args) > 1 or node.kwargs:
            raise refuse(node, f"{op_name(node)} is called with more than one input")
        if isinstance(m, _SKIP_MODULES):
            self.max_dropout = max(self.max_dropout, float(getattr(m, "p", 0.0)))
            return x
        if isinstance(m, nn.Embedding):
            return self.embedding(node, m, x)
        if isinstance(m, nn.Linear):
            self.feature_axis(node, x, len(x.axes) - 1, op_name(node))
            w = m.weight.detach()
            b = m.bias.detach() if m.bias is not None else torch.zeros(m.out_features, dtype=w.dtype)
            return self.affine(node, x, len(x.axes) - 1, Affine((f"{node.target}.weight",) + ((f"{node.target}.bias",)
                               if m.bias is not None else ()), w, b, True, m.weight))
        if isinstance(m, nn.Conv1d):
            return self.conv1d(node, m, x)
        if isinstance(m, (nn.BatchNorm1d,)):
            return self.batchnorm(node, m, x)
        if type(m) in _ELEMENTWISE_MODULES:
            if isinstance(m, nn.GELU) and m.approximate != "none":
                raise refuse(node, f"{op_name(node)}: capture takes the exact GELU (approximate='none')")
            if isinstance(m, nn.Hardtanh) and type(m) is nn.Hardtanh and (m.min_val, m.max_val) != (-1.0, 1.0):
                raise refuse(node, f"{op_name(node)}: capture takes Hardtanh over [-1, 1] (min_val -1, max_val 1)")
            return self.data(node, x.axes, x.ops + (InputAct(_ELEMENTWISE_MODULES[type(m)]),), x.source)
        if isinstance(m, (nn.LogSoftmax, nn.Softmax)):
            kind = "log_softmax" if isinstance(m, nn.LogSoftmax) else "softmax"
            return self.activation(node, x, kind, m.dim)
        if isinstance(m, nn.LayerNorm):
            raise refuse(node, f"{op_name(node)}: LayerNorm normalises every step by its own mean and variance, "
                         "which is no fixed affine map to fold into the next weights; not supported yet by the "
                         "integer kernel / C export")
        raise refuse(node, f"{op_name(node)} on the data path is not supported by capture (supported: Embedding, "
                     "Linear, Conv1d, BatchNorm1d, ReLU / Tanh / Sigmoid / GELU / Hardtanh, Dropout, LSTM / GRU / "
                     "RNN, log_softmax / softmax)")

    def embedding(self, node, m: nn.Embedding, x: Data):
        if x.ops or self.value(node.args[0]).dtype.is_floating_point:
            raise refuse(node, f"{op_name(node)} must read the integer token ids given to forward")
        if m.max_norm is not None:
            raise refuse(node, f"{op_name(node)} has max_norm (it renormalises rows while running); capture "
                         "needs a plain lookup table")
        return self.data(node, x.axes + ((self.bind.fresh_feature(),),), (Embed(str(node.target), m),), x.source)

    def affine(self, node, x: Data, axis: int, op: Affine) -> Data:
        axes = list(x.axes)
        axes[axis] = (self.bind.fresh_feature(),)
        return self.data(node, axes, x.ops + (op,), x.source)

    def conv1d(self, node, m: nn.Conv1d, x: Data):
        k = m.kernel_size[0]
        padding = {"valid": (0,), "same": ((k - 1) // 2,) if k % 2 else None}.get(m.padding, m.padding) \
            if isinstance(m.padding, str) else m.padding
        if m.stride[0] != 1 or m.dilation[0] != 1 or m.groups != 1 or padding is None or \
                (k > 1 and m.padding_mode != "zeros") or (k == 1 and padding[0] != 0):
            raise refuse(node, f"{op_name(node)}: capture takes a Conv1d with stride 1, dilation 1, groups 1 and "
                         "zero padding (none for kernel 1)")
        if len(x.axes) != 3:
            raise refuse(node, f"{op_name(node)} needs a batched (N, C, L) input")
        self.feature_axis(node, x, 1, op_name(node))
        b = m.bias.detach() if m.bias is not None else torch.zeros(m.out_channels, dtype=m.weight.dtype)
        names = (f"{node.target}.weight",) + ((f"{node.target}.bias",) if m.bias is not None else ())
        if k == 1:
            return self.affine(node, x, 1, Affine(names, m.weight.detach()[:, :, 0], b, True))  # (out, in)
        self.time_axis(node, x, 2)
        op = Affine(names, conv1d_as_linear_weight(m.weight.detach()), b, True, window=k, padding=padding[0])
        axes = [x.axes[0], (self.bind.fresh_feature(),), ("T",)]  # (N, out channels, L') with L' time
        self.bind.sizes["T"] = window_count(self.shape(node.args[0])[2], k, padding[0])
        return self.data(node, axes, x.ops + (op,), x.source)

    def time_axis(self, node: fx.Node, d: Data, axis: int) -> None:
        """Insist that axis `axis` of `d` is the input's time axis (binding it to time if still open)."""
        group = d.axes[axis]
        role = self.bind.role(group[0]) if len(group) == 1 else None
        if role is not None and role == group[0] and ":" in role:
            self.bind.roles[role] = "T"
        elif role != "T" or group != (group[0],):
            raise refuse(node, f"{op_name(node)} with kernel > 1 slides over the {self.roles(group)} axis; capture "
                         "needs it to slide over the input's time axis, (N, C, L) with L time")

    def batchnorm(self, node, m: nn.BatchNorm1d, x: Data):
        if m.running_mean is None or m.running_var is None:
            raise refuse(node, f"{op_name(node)} has no running statistics (track_running_stats=False), so it "
                         "normalises with each batch's statistics: no fixed affine map to fold")
        if len(x.axes) not in (2, 3):
            raise refuse(node, f"{op_name(node)} needs an (N, C) or (N, C, L) input")
        self.feature_axis(node, x, 1, op_name(node))
        scale = (m.weight.detach() if m.weight is not None else 1.0) / torch.sqrt(m.running_var + m.eps)
        shift = (m.bias.detach() if m.bias is not None else 0.0) - m.running_mean * scale
        names = tuple(f"{node.target}.{n}" for n, t in (("weight", m.weight), ("bias", m.bias),
                                                         ("running_mean", 1), ("running_var", 1)) if t is not None)
        return self.affine(node, x, 1, Affine(names, torch.diag(scale), shift, False))

    def recurrent(self, node, m, args):
        x = self.as_data(args[0], node.args[0])
        if not isinstance(x, Data):
            raise refuse(node, f"{op_name(node)} reads something other than the data path")
        if len(x.axes) != 3:
            raise refuse(node, f"{op_name(node)} gets a {len(x.axes)}-D input; capture needs batched 3-D input")
        batch_first = bool(getattr(m, "batch_first", False))
        expected = ("B", "T", "F") if batch_first else ("T", "B", "F")
        for axis, want in enumerate(expected):
            group = x.axes[axis]
            if want == "F":
                self.feature_axis(node, x, 2, op_name(node))
                continue
            if len(group) != 1:
                raise refuse(node, f"{op_name(node)} reads {want} from an axis holding {self.roles(group)}")
            role = self.bind.role(group[0])
            if role == group[0] and ":" in role:
                self.bind.roles[role] = want
                self.bind.sizes[want] = self.shape(node.args[0])[axis]
            elif role != want:
                raise refuse(node, f"{op_name(node)} (batch_first={batch_first}) reads {_ROLE_NAMES[want]} from "
                             f"the axis that holds {_ROLE_NAMES.get(role, role)} (time and batch were swapped "
                             "before it)")
        hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
        self.state_input(node, hx, self.calls)
        if isinstance(m, nn.RNNBase):
            self.max_dropout = max(self.max_dropout, float(m.dropout))
        out = self.data(node, tuple((r,) for r in expected[:2]) + ((self.bind.fresh_feature(),),),
                        x.ops + (Recurrent(str(node.target), m, self.calls),), x.source)
        self.calls += 1
        return RnnCall(self.calls - 1, m, out)

    def state_input(self, node, hx, index: int) -> None:
        if hx is None:
            return
        if isinstance(hx, fx.Node) and isinstance(self.env[hx], Arg):
            self.check_zero(node, hx)
            self.state_args[self.env[hx].name] = index
            return
        for leaf in (hx if isinstance(hx, (tuple, list)) else [hx]):
            v = self.env.get(leaf) if isinstance(leaf, fx.Node) else None
            if isinstance(v, InputState) and not v.arg:
                self.check_zero(node, leaf)
                continue
            if isinstance(v, (Arg, InputState)):
                raise refuse(node, f"{op_name(node)} gets its state from pieces of forward's argument; capture "
                             "needs the whole state as one argument (h, or the tuple (h, c))")
            raise refuse(node, f"{op_name(node)} starts from a state computed inside forward; capture supports a "
                         "state given as an argument, zeros, or None")

    def check_zero(self, node, hx: fx.Node) -> None:
        v = self.value(hx)
        leaves = v if isinstance(v, (tuple, list)) else [v]
        if any(isinstance(t, torch.Tensor) and bool(t.ne(0).any()) for t in leaves):
            raise refuse(node, f"the example passes a non-zero initial state to {op_name(node)}; give zeros (or "
                         "None) in example_inputs: the captured model starts from zeros unless a state is passed")

    def activation(self, node, x: Data, kind: str, dim):
        if dim is None:
            raise refuse(node, f"{kind} without dim (torch guesses the axis); pass dim=-1 over the features")
        if not isinstance(dim, int):
            raise refuse(node, f"{kind} over a computed axis; pass a constant dim")
        axis = dim % len(x.axes)
        self.feature_axis(node, x, axis, kind)
        return self.data(node, x.axes, x.ops + (Activation(kind),), x.source)

    # --- functions and methods ------------------------------------------------------------
    def call(self, node: fx.Node):
        args = [self.sym(a) for a in node.args]
        kwargs = {k: self.sym(v) for k, v in node.kwargs.items()}
        target = node.target
        flat = _flatten(args) + _flatten(list(kwargs.values()))
        if target is operator.getitem and (isinstance(args[0], (RnnCall, StateOf, InputState)) or (
                isinstance(args[0], Arg) and not isinstance(self.value(node.args[0]), torch.Tensor))):
            return self.getitem_special(node, args[0])
        first = self.as_data(args[0], node.args[0]) if args else None
        if isinstance(first, StateOf) and node.op == "call_method" and target == "squeeze":
            return self.state_squeeze(node, first)
        if target in _ZEROS or (node.op == "call_method" and target in _ZERO_METHODS) or (
                node.op == "call_function" and getattr(target, "__name__", "") in _ZERO_METHODS):
            return InputState("")  # zeros made inside forward (weight.new_zeros(...) of an init_hidden)
        if node.op == "call_method" and target in _SIZE_METHODS or target is getattr and node.args[1] in (
                "shape", "dtype", "device"):
            return Meta()
        if not any(isinstance(a, (Data, Arg, RnnCall, StateOf, InputState)) for a in flat):
            return Meta()
        if not isinstance(first, Data) or any(isinstance(a, (Data, Arg, RnnCall, StateOf)) for a in flat[1:]):
            raise refuse(node, f"{op_name(node)} combines the data with another tensor; capture supports one "
                         "chain from the input to the output (no residual add, attention, matmul or second input)")
        name = target if node.op == "call_method" else None
        if target in _SKIP_FUNCS or name in ("contiguous", "float", "detach", "clone", "cpu"):
            return first
        if name in ("long", "int") and not first.ops:  # token ids cast before the embedding
            return first
        if name == "to" and not any(isinstance(a, torch.dtype) and a is not torch.float32
                                    for a in list(node.args[1:]) + list(node.kwargs.values())):
            return first  # a device move (or to float32)
        if target in _ELEMENTWISE_FUNCS or name in _ELEMENTWISE_METHODS:
            return self.elementwise(node, first, _ELEMENTWISE_FUNCS.get(target) or _ELEMENTWISE_METHODS[name])
        if target in _ACTIVATIONS or name in ("log_softmax", "softmax"):
            kind = _ACTIVATIONS.get(target, name)
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            return self.activation(node, first, kind, dim)
        if target is operator.getitem:
            return self.index(node, first, node.args[1])
        if target in (operator.mul, operator.truediv, torch.mul, torch.div) or name in ("mul", "div"):
            return self.scale(node, first)
        if name in ("transpose",) or target is torch.transpose:
            a, b = (node.args[1], node.args[2])
            axes = list(first.axes)
            a, b = a % len(axes), b % len(axes)
            axes[a], axes[b] = axes[b], axes[a]
            return self.data(node, axes, first.ops, first.source)
        if name == "t":
            return self.data(node, first.axes[::-1], first.ops, first.source)
        if name == "permute" or target is torch.permute:
            dims = node.args[1:] if name and not isinstance(node.args[1], (tuple, list)) else node.args[1]
            return self.data(node, [first.axes[d % len(first.axes)] for d in dims], first.ops, first.source)
        if name in _LAYOUT_METHODS or target in _LAYOUT_FUNCS:
            try:
                axes = regroup(first.axes, self.shape(node.args[0]), self.shape(node), self.bind.sizes)
            except CaptureError as e:
                raise refuse(node, f"{op_name(node)}: {e}") from None
            return self.data(node, axes, first.ops, first.source)
        if name == "mean" or target is torch.mean:
            return self.mean(node, first)
        raise refuse(node, f"{op_name(node)} on the data path is not supported by capture (supported between the "
                     "layers: dropout, transpose / permute / view / reshape / flatten / squeeze / unsqueeze, "
                     "relu / tanh / sigmoid / gelu / hardtanh, indexing the last step, mean over time, "
                     "log_softmax / softmax over the features)")

    def elementwise(self, node, d: Data, kind: str) -> Data:
        """F.relu / torch.tanh / x.sigmoid() / F.gelu / F.hardtanh on the data: an InputAct op."""
        positional = {"gelu": ("approximate",), "hardtanh": ("min_val", "max_val")}.get(kind, ())  # relu: inplace
        extra = dict(zip(positional, node.args[1:]))
        extra.update({k: v for k, v in node.kwargs.items() if k != "inplace"})
        if kind == "gelu" and extra.get("approximate", "none") != "none":
            raise refuse(node, f"{op_name(node)}: capture takes the exact GELU (approximate='none')")
        if kind == "hardtanh" and (extra.get("min_val", -1.0), extra.get("max_val", 1.0)) != (-1.0, 1.0):
            raise refuse(node, f"{op_name(node)}: capture takes hardtanh over [-1, 1] (min_val -1, max_val 1)")
        if kind in ("relu", "tanh", "sigmoid") and extra:
            raise refuse(node, f"{op_name(node)} with extra arguments {sorted(extra)}")
        return self.data(node, d.axes, d.ops + (InputAct(kind),), d.source)

    def scale(self, node, d: Data):
        """x * c or x / c with a Python number c: a per-feature scale (folded like BatchNorm)."""
        c = node.args[1] if len(node.args) > 1 else None
        if not isinstance(c, (int, float)) or isinstance(c, bool) or \
                not isinstance(node.args[0], fx.Node) or (node.kwargs and set(node.kwargs) != {"rounding_mode"}) or \
                node.kwargs.get("rounding_mode") is not None:
            raise refuse(node, f"{op_name(node)}: capture folds the data times or divided by a constant number "
                         "only (no tensor operand)")
        axis = next((i for i, g in enumerate(d.axes) if len(g) == 1 and self.bind.role(g[0]) == "F"), None)
        if axis is None:
            raise refuse(node, f"{op_name(node)} on data whose feature axis is not known yet; scale after the first "
                         "layer, or fold the constant into your input pipeline")
        width = self.shape(node)[axis]
        factor = float(c) if target_is_mul(node) else 1.0 / float(c)
        op = Affine((), torch.eye(width, dtype=torch.float64) * factor, torch.zeros(width, dtype=torch.float64), False)
        return self.affine(node, d, axis, op)

    def mean(self, node, d: Data):
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        if isinstance(dim, (tuple, list)) and len(dim) == 1:
            dim = dim[0]
        if not isinstance(dim, int) or node.kwargs.get("keepdim") or (len(node.args) > 2 and node.args[2]):
            raise refuse(node, "mean must run over one axis (time) without keepdim")
        axis = dim % len(d.axes)
        if d.axes[axis] != ("T",):
            raise refuse(node, f"mean over the {self.roles(d.axes[axis])} axis; capture supports the mean over time")
        axes = d.axes[:axis] + d.axes[axis + 1:]
        return self.data(node, axes, d.ops + (ReadoutOp("mean"),), d.source)

    def index(self, node, d: Data, index):
        items = list(index) if isinstance(index, tuple) else [index]
        if Ellipsis in items:
            k = items.index(Ellipsis)
            items[k:k + 1] = [slice(None)] * (len(d.axes) - len(items) + 1)
        items += [slice(None)] * (len(d.axes) - len(items))
        picked = [i for i, it in enumerate(items) if not (isinstance(it, slice) and it == slice(None))]
        if len(picked) != 1 or len(items) != len(d.axes) or not self.is_last_index(items[picked[0]], d, picked[0]):
            raise refuse(node, "indexing the data: capture supports only picking the last time step (out[:, -1] "
                         "batch first, out[-1] time major)")
        axis = picked[0]
        if d.axes[axis] != ("T",):
            raise refuse(node, f"indexing the last entry of the {self.roles(d.axes[axis])} axis; capture supports "
                         "the last time step")
        return self.data(node, d.axes[:axis] + d.axes[axis + 1:], d.ops + (ReadoutOp("last"),), d.source)

    def is_last_index(self, item, d: Data, axis: int) -> bool:
        if isinstance(item, int):
            return item == -1
        if isinstance(item, fx.Node) and isinstance(self.env[item], Meta):  # e.g. x.size(1) - 1
            return self.value(item) == self.bind.sizes.get("T", 0) - 1
        return False

    def getitem_special(self, node, v):
        i = node.args[1]
        if isinstance(v, RnnCall):
            if i == 0:
                return self.data(node, v.data.axes, v.data.ops, v.data.source)
            if i == 1:
                return StateOf(v)
        elif isinstance(v, (Arg, InputState)):
            return InputState(v.name if isinstance(v, Arg) else v.arg, whole=False)
        elif isinstance(v, StateOf) and isinstance(self.value(node.args[0]), list):
            raise refuse(node, "indexing the per-layer state of rnnslim's stack of unequal layers; capture supports "
                         "the output sequence of such a stack")
        elif isinstance(v, StateOf):
            lstm = _is_lstm(v.call.module)
            if v.part is None and lstm and i in (0, 1):
                return StateOf(v.call, "h" if i == 0 else "c")
            if (v.part == "h" or (v.part is None and not lstm)) and i == -1:
                return self.last_layer_h(node, v)
        raise refuse(node, "indexing a recurrent module's result or state: capture supports out[0] / output, h_n "
                     "(h_n, c_n) and h_n[-1] (the last layer's final state) of a unidirectional last module")

    def last_layer_h(self, node, v: StateOf):
        if getattr(v.call.module, "bidirectional", False):
            raise refuse(node, "h_n[-1] of a bidirectional module is the backward direction's state at the first "
                         "step; capture supports the last-step readout of unidirectional modules")
        d = v.call.data
        return self.data(node, (d.axes[1 if d.axes[0] == ("T",) else 0], d.axes[2]), d.ops + (ReadoutOp("last"),),
                         d.source)

    def state_squeeze(self, node, v: StateOf):
        h = self.value(node.args[0])
        dims = node.args[1:] or (None,)
        if v.part in ("h", None) and h.shape[0] == 1 and dims[0] in (0, None) and not (
                v.part is None and _is_lstm(v.call.module)):
            return self.last_layer_h(node, v)
        raise refuse(node, "squeeze of a recurrent state: capture supports h_n.squeeze(0) of a one-layer module")


_ROLE_NAMES = {"T": "time", "B": "batch", "F": "features"}


def _is_lstm(module: nn.Module) -> bool:
    if isinstance(module, TorchContractStack):
        return module.cell is CellType.LSTM
    return isinstance(module, nn.LSTM)


def target_is_mul(node: fx.Node) -> bool:
    return node.target in (operator.mul, torch.mul, "mul")


def _flatten(items) -> list:
    out = []
    for a in items:
        if isinstance(a, (tuple, list)):
            out += _flatten(a)
        else:
            out.append(a)
    return out
