"""Lower a captured data path (a chain of ops from walk.py) into a ModelSpec and a float
SequenceModel holding copies of the user's weights.

    [Embed] Affine* [InputAct Affine*] (Recurrent Affine*)+ with one optional ReadoutOp after the
    last Recurrent, and an optional Activation last.

Affine maps are composed (in float64) and folded: in front of the first recurrent module into
the embedding table, into the input projection (when a real Linear is among them) or into
layer 0's W_ih and bias (BatchNorm alone: the input stays "identity"); between recurrent
modules into the next module's layer-0 W_ih; after the last one into the decoder (none: an
identity decoder). A decoder whose weight is the embedding's Parameter stays tied.

A front end with an elementwise activation (InputAct) lowers to input kind "linear" with
spec.input_activation: the maps before it become the input projection (an identity one if
there are none), the maps after it fold into layer 0's W_ih. A Conv1d with kernel k > 1 (an
Affine with a window) becomes spec.input_window / input_padding; maps after it compose into
its weight, bias-free per-feature maps before it are folded into every frame of the window.
After an Embedding, the activation is applied to the table's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnslim.capture.errors import CaptureError
from rnnslim.capture.values import Activation, Affine, Embed, InputAct, ReadoutOp, Recurrent
from rnnslim.models.sequence import (
    InputActivation, InputKind, LayerShape, ModelSpec, OutputActivation, Readout, SequenceModel, apply_input_activation,
)
from rnnslim.recurrent.gates import cell_of_module
from rnnslim.recurrent.stack import RecurrentStack
from rnnslim.recurrent.torch_contract import TorchContractStack


@dataclass
class Lowered:
    model: SequenceModel
    modules: list[tuple[int, int]]  # stack layers [first, end) per user recurrent call on the data path
    calls: list[int]  # the walk's call index of each (states name calls by it)
    module_kinds: list[str]
    tensor_names: dict[str, str] = field(default_factory=dict)


def compose(maps: list[Affine]) -> tuple[Tensor, Tensor, tuple[str, ...], bool]:
    """One (W, b) for applying `maps` in order (float64), their names, whether a Linear is among them."""
    w, b = maps[0].weight.double(), maps[0].bias.double()
    for m in maps[1:]:
        w, b = m.weight.double() @ w, m.weight.double() @ b + m.bias.double()
    return w, b, tuple(n for m in maps for n in m.names), any(m.linear for m in maps)


def single_layers(module: nn.Module) -> list[nn.RNNBase]:
    """One single-layer, sequence-first torch module per layer of a user recurrent module."""
    if isinstance(module, TorchContractStack):
        bad = [type(m).__name__ for m in module.layers if not isinstance(m, nn.RNNBase) or m.num_layers != 1]
        if bad:
            raise CaptureError(f"a TorchContractStack holding {bad[0]} layers (quantized?) cannot be captured; "
                               "capture the float model, then quantize the captured one")
        return list(module.layers)
    return list(RecurrentStack.from_torch(module).layers)


def user_layer_names(name: str, module: nn.Module, k: int) -> str:
    """Prefix of the user's tensors of layer k: 'rnn' + '.weight_ih_l{k}' or 'rnn.layers.{k}' + '.weight_ih_l0'."""
    return f"{name}.layers.{k}." if isinstance(module, TorchContractStack) else f"{name}."


def split(ops: tuple, lines: dict[int, str] | None = None
          ) -> tuple[Embed | None, list, list[tuple[Recurrent, list[Affine]]], ReadoutOp | None, Activation | None]:
    """The chain's parts; a misplaced op raises CaptureError with its source line (`lines`: id(op) -> text)."""
    lines = lines or {}
    ops = list(ops)
    embed = ops.pop(0) if ops and isinstance(ops[0], Embed) else None
    pre: list = []  # Affine* [InputAct Affine*]
    while ops and isinstance(ops[0], (Affine, InputAct)):
        if isinstance(ops[0], InputAct) and any(isinstance(p, InputAct) for p in pre):
            raise CaptureError(f"two activations in front of the first recurrent module; capture takes one"
                               f"{lines.get(id(ops[0]), '')}")
        pre.append(ops.pop(0))
    blocks: list[tuple[Recurrent, list[Affine]]] = []
    readout = activation = None
    for op in ops:
        if isinstance(op, Recurrent):
            if readout is not None or activation is not None:
                raise CaptureError("a recurrent module reads a readout or an activated output; capture supports "
                                   f"the readout and (log_)softmax after the last recurrent module only{lines.get(id(op), '')}")
            blocks.append((op, []))
        elif isinstance(op, InputAct):
            raise CaptureError(f"a {op.kind} after a recurrent module is not supported by capture: the integer "
                               "kernel takes an elementwise activation between the input projection and the first "
                               f"recurrent module only{lines.get(id(op), '')}")
        elif isinstance(op, Affine):
            if op.window > 1:
                raise CaptureError("a Conv1d with kernel > 1 after a recurrent module is not supported by capture "
                                   f"(it is taken as the front end only){lines.get(id(op), '')}")
            if activation is not None:
                raise CaptureError(f"a Linear after log_softmax / softmax is not supported by capture"
                                   f"{lines.get(id(op), '')}")
            blocks[-1][1].append(op)
        elif isinstance(op, ReadoutOp):
            if readout is not None:
                raise CaptureError(f"two readouts (last step / mean) on one path{lines.get(id(op), '')}")
            if op.kind == "mean" and activation is not None:
                raise CaptureError("the mean over time of a (log_)softmax is not supported (capture applies the "
                                   f"activation after the readout){lines.get(id(op), '')}")
            readout = op
        elif isinstance(op, Activation):
            if activation is not None:
                raise CaptureError(f"two output activations on one path{lines.get(id(op), '')}")
            activation = op
        else:
            raise CaptureError(f"unexpected {type(op).__name__} in the data path")
    if not blocks:
        raise CaptureError("the output does not depend on any recurrent module (LSTM / GRU / RNN); capture "
                           "needs at least one")
    return embed, pre, blocks, readout, activation


def split_front(pre: list, lines: dict[int, str]) -> tuple[list[Affine], InputAct | None, list[Affine]]:
    """The maps before the input activation, the activation, the maps after it (no window there)."""
    k = next((i for i, op in enumerate(pre) if isinstance(op, InputAct)), None)
    front, act, after = (pre, None, []) if k is None else (pre[:k], pre[k], pre[k + 1:])
    windows = [op for op in front if op.window > 1]
    if len(windows) > 1 or any(op.window > 1 for op in after):
        op = windows[1] if len(windows) > 1 else next(op for op in after if op.window > 1)
        raise CaptureError("capture takes one Conv1d with kernel > 1, as the first layer of the front end (before its "
                           f"activation){lines.get(id(op), '')}")
    return front, act, after


def compose_front(front: list[Affine], lines: dict[int, str]) -> tuple[Tensor, Tensor, tuple[str, ...], int, int]:
    """The input projection (W [E, k*F], b) of the maps before the activation, with its window k and padding p."""
    k = next((i for i, op in enumerate(front) if op.window > 1), None)
    if k is None:
        w, b, names, _ = compose(front)
        return w, b, names, 1, 0
    win = front[k]
    w, b = win.weight.double(), win.bias.double()
    if k:  # bias-free per-feature maps before the window: the same map on every frame
        w0, b0, _, _ = compose(front[:k])
        if bool(b0.ne(0).any()):
            raise CaptureError("a shift (bias) before a Conv1d with kernel > 1 would also shift its zero padding; "
                               f"capture folds only bias-free maps into the convolution{lines.get(id(win), '')}")
        w = w @ torch.block_diag(*[w0] * win.window)  # (E, k*F) @ (k*F, k*F0) -> (E, k*F0)
    if k + 1 < len(front):
        w2, b2, _, _ = compose(front[k + 1:])
        w, b = w2 @ w, w2 @ b + b2
    return w, b, tuple(n for op in front for n in op.names), win.window, win.padding


def lower(ops: tuple, max_dropout: float, lines: dict[int, str] | None = None) -> Lowered:
    lines = lines or {}
    embed, pre, blocks, readout, activation = split(ops, lines)
    pre, input_act, after_act = split_front(pre, lines)
    window = padding = None
    names: dict[str, str] = {}
    cells = {cell_of_module(r.module) if not isinstance(r.module, TorchContractStack) else r.module.cell
             for r, _ in blocks}
    if len(cells) != 1:
        raise CaptureError(f"recurrent modules of different cell types ({', '.join(sorted(c.value for c in cells))}); "
                           "an rnnslim model holds one cell type")
    cell = cells.pop()
    per_call = [single_layers(r.module) for r, _ in blocks]
    w_ih_fold: dict[int, tuple[Tensor, Tensor, tuple]] = {}  # call index -> affine folded into its layer-0 input

    # front end
    table = input_w = input_b = None
    if embed is not None:
        table = embed.module.weight.detach().double()  # (V, E)
        names[f"{embed.name}.weight"] = "embedding.weight"
        if any(op.window > 1 for op in pre):
            raise CaptureError("a Conv1d with kernel > 1 after an Embedding is not supported by capture")
        for i, maps in enumerate((pre, after_act)):
            if maps:
                w, b, n, _ = compose(maps)
                table = table @ w.T + b  # every row through the affine maps
                for x in n:
                    names[x] = "(folded into embedding.weight)"
            if i == 0 and input_act is not None:
                table = apply_input_activation(table, input_act.kind)  # the activation of every row
        kind, input_size, embed_size = InputKind.EMBEDDING, table.shape[0], table.shape[1]
    elif input_act is not None or (pre and compose(pre)[3]):
        if pre:
            input_w, input_b, n, window, padding = compose_front(pre, lines)
        else:  # an activation straight on the input features: an identity projection in front of it
            width = per_call[0][0].input_size if not after_act else after_act[0].weight.shape[1]
            input_w, input_b, n = torch.eye(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64), ()
        for x in n:
            names[x] = "input_proj." + x.rsplit(".", 1)[1] if len(pre) == 1 and pre[0].linear else "(folded into input_proj)"
            if (window or 1) > 1 and x.endswith(".weight"):
                names[x] += " (the Conv1d's weight as a Linear over windows of frames)"
        if after_act:
            w_ih_fold[0] = compose(after_act)[:3]
        kind, embed_size = InputKind.LINEAR, input_w.shape[0]
        input_size = input_w.shape[1] // (window or 1)
    else:
        if pre:
            w_ih_fold[0] = compose(pre)[:3]
        first = per_call[0][0]
        kind = InputKind.IDENTITY
        input_size = embed_size = (w_ih_fold[0][0].shape[1] if pre else first.input_size)

    # recurrent modules and what follows each
    layers, modules, kinds, offset = [], [], [], 0
    for i, ((rec, post), singles) in enumerate(zip(blocks, per_call)):
        for layer in singles:
            layers.append(LayerShape(hidden_size=layer.hidden_size, proj_size=getattr(layer, "proj_size", 0),
                                     bidirectional=layer.bidirectional))
        modules.append((offset, offset + len(singles)))
        uniform = not isinstance(rec.module, TorchContractStack) or rec.module.uniform()
        kinds.append("torch" if uniform else "per_layer")
        offset += len(singles)
        if i + 1 < len(blocks) and post:
            w_ih_fold[i + 1] = compose(post)[:3]
    head = blocks[-1][1]
    tied = (embed is not None and not pre and len(head) == 1 and head[0].param is embed.module.weight)
    if head:
        dec_w, dec_b, head_names, _ = compose(head)
    else:
        width = layers[-1].to_spec().output_size
        dec_w, dec_b, head_names = torch.eye(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64), ()
    spec = ModelSpec(cell=cell, input_kind=kind, input_size=input_size, embed_size=embed_size, layers=layers,
                     output_size=dec_w.shape[0], dropout=min(max_dropout, 0.9),
                     readout=Readout(readout.kind) if readout else Readout.ALL, tie_weights=tied,
                     output_activation=OutputActivation(activation.kind) if activation else OutputActivation.NONE,
                     input_window=window or 1, input_padding=padding or 0,
                     input_activation=InputActivation(input_act.kind) if kind is InputKind.LINEAR and input_act
                     else InputActivation.NONE)
    model = SequenceModel(spec).float()
    with torch.no_grad():
        if table is not None:
            model.embedding.weight.copy_(table)
        if input_w is not None:
            model.input_proj.weight.copy_(input_w)
            model.input_proj.bias.copy_(input_b)
        k = 0
        for i, ((rec, _), singles) in enumerate(zip(blocks, per_call)):
            for j, layer in enumerate(singles):
                _copy_layer(model.rnn.layers[k], layer, w_ih_fold.get(i) if j == 0 else None)
                prefix = user_layer_names(rec.name, rec.module, j)
                for pname, _ in layer.named_parameters():
                    user = prefix + (pname if isinstance(rec.module, TorchContractStack) else pname.replace("_l0", f"_l{j}"))
                    names[user] = f"rnn.layers.{k}.{pname}"
                k += 1
            if i + 1 < len(blocks) and blocks[i][1]:
                for x in compose(blocks[i][1])[2]:
                    names[x] = f"(folded into rnn.layers.{modules[i + 1][0]}.weight_ih_l0)"
        if not tied:
            model.decoder.weight.copy_(dec_w)
        model.decoder.bias.copy_(dec_b)
        for x in head_names:
            names[x] = ("decoder." + x.rsplit(".", 1)[1]) if len(head) == 1 and head[0].linear else "(folded into decoder)"
        if tied:
            names[head_names[0]] = "decoder.weight (tied to embedding.weight)"
        for x in (w_ih_fold.get(0, (None, None, ()))[2] if kind is not InputKind.EMBEDDING else ()):
            names[x] = "(folded into rnn.layers.0.weight_ih_l0)"
    return Lowered(model.eval(), modules, [r.call for r, _ in blocks], kinds, names)


def _copy_layer(dst: nn.RNNBase, src: nn.RNNBase, fold: tuple[Tensor, Tensor, tuple] | None) -> None:
    """Copy one single-layer module's weights into `dst`; `fold` (W, b) is an affine map on its
    input, folded into W_ih (and b_ih) of both directions. Missing biases (bias=False) are zeros."""
    theirs = dict(src.named_parameters())
    for name, p in dst.named_parameters():
        t = theirs.get(name)
        value = t.detach().double() if t is not None else torch.zeros(p.shape, dtype=torch.float64)
        if fold is not None and name.startswith("weight_ih"):
            w, b, _ = fold
            value = value @ w  # (G*H, out) @ (out, in) -> (G*H, in)
            bias_name = name.replace("weight", "bias")
            bias = theirs.get(bias_name)
            extra = t.detach().double() @ b  # W_ih b: the affine map's shift through the input weights
            getattr(dst, bias_name).copy_((bias.detach().double() if bias is not None else 0.0) + extra)
        if fold is not None and name.startswith("bias_ih"):
            continue  # written with its weight
        if tuple(value.shape) != tuple(p.shape):
            raise CaptureError(f"layer tensor {name} has shape {tuple(value.shape)}, the chained layers expect "
                               f"{tuple(p.shape)} (do the recurrent modules' sizes chain?)")
        p.copy_(value)
