"""Remove whole recurrent layers.

    remove_layers_(model, [1])                                   # sizes must match
    remove_layers_(model, [2], refit="lstsq", calibration=task)  # sizes may differ

What replaces a removed layer l (input x_t of width I, output y_t of width O):
  - refit="none": nothing; x_t goes straight to the layer's consumer. Exact only in the
    sense that shapes fit, so it needs I == O (e.g. the middle layer of an equal-width
    stack); the model's function changes and usually needs fine-tuning.
  - refit="lstsq": the best affine map y_t ~ A x_t + c over calibration data (ridge least
    squares, one sample per time step and sequence) is folded into the consumer:
    W' = W A, b' = b + W c. The consumer keeps its outputs as close as a linear map of
    the layer's input allows, and I != O is fine. The fit ignores the layer's memory (it
    is a per-step map), so fine-tuning is still advisable.

A user's int attribute that holds the old layer count of a shortened torch module and is
read as one (`self.nlayers` in `init_hidden`) is set to the new count (attributes.py),
recorded under "attributes" in the history record and listed in the result's warnings;
`example_inputs` may be a callable model -> tuple, called on the model as it is at each step.
Layers are named like unit groups: an int is the i-th recurrent layer in module order
(for a SequenceModel, the stack layer), "rnn.layers.1" a RecurrentStack layer, "lstm[1]" a
layer of a multi-layer torch module (refit "none" only; the module's layers all share
one size, so only removing layer 0 can fail, when input_size != output width).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
from torch import Tensor, nn

from rnnslim.graph.coupling import CouplingError, GroupKind
from rnnslim.graph.discover import discover_coupling
from rnnslim.graph.groups import build_groups
from rnnslim.prune.structured import append_history, n_params, resolve_keys
from rnnslim.prune.structured.attributes import LAYERS, SizeChange, update_size_attributes_
from rnnslim.prune.structured.cut import ExampleInputs, example_inputs_for
from rnnslim.prune.structured.units import rebuild_module, replace_module, sync_specs
from rnnslim.recurrent.stack import RecurrentStack
from rnnslim.utils.atomic import atomic_verb


class LayerRefit(str, Enum):
    NONE = "none"
    LSTSQ = "lstsq"


def _stack_of(model: nn.Module, path: str) -> tuple[RecurrentStack, int] | None:
    parent, _, leaf = path.rpartition(".")
    stack_path = parent.rpartition(".")[0] if parent.endswith("layers") else None
    if stack_path is None or not leaf.isdigit():
        return None
    stack = model.get_submodule(stack_path)
    return (stack, int(leaf)) if isinstance(stack, RecurrentStack) else None


def _calibration_inputs(calibration, n_batches: int) -> list[tuple]:
    if calibration is None:
        raise ValueError("refit='lstsq' needs calibration data: a Task or a list of example inputs")
    if hasattr(calibration, "calibration_batches"):
        return [(b.inputs,) for b in calibration.calibration_batches(n_batches)]
    return [x if isinstance(x, tuple) else (x,) for x in calibration]


@torch.no_grad()
def _fit_affine(model: nn.Module, layer: nn.Module, inputs: list[tuple], ridge: float) -> tuple[Tensor, Tensor]:
    """A (O, I), c (O,) minimising sum_t |y_t - A x_t - c|^2 + ridge * |A|^2 over the calibration run."""
    xs, ys = [], []

    def hook(mod, args, out):
        xs.append(args[0].reshape(-1, args[0].shape[-1]).double())
        ys.append(out[0].reshape(-1, out[0].shape[-1]).double())

    h = layer.register_forward_hook(hook)
    was = model.training
    try:
        model.eval()
        for inp in inputs:
            model(*inp)
    finally:
        h.remove()
        model.train(was)
    X, Y = torch.cat(xs), torch.cat(ys)  # (N, I), (N, O)
    X1 = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], 1)
    reg = ridge * len(X) * torch.eye(X1.shape[1], dtype=X.dtype, device=X.device)
    reg[-1, -1] = 0  # no penalty on the intercept
    beta = torch.linalg.solve(X1.T @ X1 + reg, X1.T @ Y)  # (I+1, O)
    return beta[:-1].T, beta[-1]


def _fold(model: nn.Module, consumer_path: str, A: Tensor, c: Tensor) -> None:
    """Replace consumer input columns W (R, O) by W A (R, I) and add W c to its bias."""
    mod = model.get_submodule(consumer_path)
    new = {}
    if isinstance(mod, nn.Linear):
        names = [("weight", "bias")]
    elif isinstance(mod, nn.RNNBase):
        names = [(f"weight_ih_l0{s}", f"bias_ih_l0{s}" if mod.bias else None) for s in
                 ([""] + (["_reverse"] if mod.bidirectional else []))]
    else:
        raise CouplingError(f"refit='lstsq' can fold into Linear or recurrent consumers, not {type(mod).__name__} "
                            f"('{consumer_path}')")
    for w_name, b_name in names:
        W = getattr(mod, w_name).detach().double()
        new[w_name] = (W @ A.to(W)).to(getattr(mod, w_name).dtype)
        if b_name is not None and getattr(mod, b_name, None) is not None:
            b = getattr(mod, b_name).detach()
            new[b_name] = (b.double() + W @ c.to(W)).to(b.dtype)
    replace_module(model, consumer_path, rebuild_module(mod, new))


@atomic_verb
def remove_layers_(model: nn.Module, layers: Sequence[int | str], refit: LayerRefit | str = LayerRefit.NONE,
                   calibration=None, ridge: float = 1e-4, n_batches: int = 8,
                   example_inputs: ExampleInputs | None = None, consumers: dict | None = None) -> dict:
    """Remove the given recurrent layers in place; returns {"removed": [...], params before/after}.

    calibration (refit='lstsq'): a Task (its calibration batches) or a list of model inputs.
    """
    refit = LayerRefit(refit)
    before = n_params(model)
    groups = build_groups(model, discover_coupling(model, example_inputs_for(model, example_inputs), consumers,
                                                   strict=False))
    targets = []
    for key, gs in resolve_keys(groups, list(layers)).items():
        hid = [g for g in gs if g.kind is GroupKind.HIDDEN]
        if len(hid) != 1:
            raise KeyError(f"{key!r} names {len(hid)} layers; name one layer per entry (e.g. 'lstm[1]')")
        targets.append(hid[0])

    def order(g):  # highest index first, so the names of the others stay valid
        on_stack = _stack_of(model, g.module)
        return (g.module.rpartition(".")[0], on_stack[1]) if on_stack else (g.module, g.layer)

    removed, updated, stale = [], {}, []
    for g in sorted(targets, key=order, reverse=True):
        graph = discover_coupling(model, example_inputs_for(model, example_inputs), consumers, strict=False)
        rm = graph.recurrent[g.module]
        on_stack = _stack_of(model, g.module)
        if on_stack is not None:
            _remove_stack_layer(model, on_stack, g, graph, refit, calibration, ridge, n_batches)
        elif refit is not LayerRefit.NONE:
            raise CouplingError(f"refit='{refit.value}' works on RecurrentStack layers; '{g.name}' is a layer of a "
                                f"torch {rm.cell.value.upper()} module")
        else:
            _remove_torch_layer(model, rm, g.layer)
            change = SizeChange(rm.path, LAYERS, rm.path, rm.num_layers, rm.num_layers - 1)
            now, stale = update_size_attributes_(model, [change])  # before the next trace builds inputs
            updated.update({k: [updated.get(k, v)[0], v[1]] for k, v in now.items()})
        removed.append(g.name)
    record = {"op": "remove_layers", "layers": removed, "refit": refit.value}
    if consumers:
        record["consumers"] = {k: list(v) for k, v in consumers.items()}
    if updated:
        record["attributes"] = updated
    append_history(model, record)
    sync_specs(model)
    notes = [f"updated {a} {old} -> {new}" for a, (old, new) in updated.items()] + [f"check: {s}" for s in stale]
    return {"removed": removed, "params_before": before, "params_after": n_params(model),
            **({"warnings": notes} if notes else {})}


def _remove_stack_layer(model, on_stack, g, graph, refit, calibration, ridge, n_batches) -> None:
    stack, idx = on_stack
    if getattr(stack, "bottlenecks", None) is not None:
        raise CouplingError(f"cannot remove '{g.module}': its stack reads layer inputs through low-rank bottlenecks "
                            "(rnnslim.lowrank); remove layers before factorizing")
    if stack.num_layers == 1:
        raise CouplingError(f"'{g.module}' is the only layer of its RecurrentStack; a stack needs one layer")
    in_size = stack.input_size if idx == 0 else stack.specs[idx - 1].output_size
    out_size = stack.specs[idx].output_size
    rm = graph.recurrent[g.module]
    out_group = rm.group_name(0, rm.out_kind)
    if refit is LayerRefit.NONE and in_size != out_size:
        raise CouplingError(f"cannot remove '{g.module}' without a re-fit: its input has {in_size} features and its "
                            f"output {out_size}, so its consumer would not fit. Use refit='lstsq' with calibration "
                            "data, or prune units first so the sizes match")
    if refit is LayerRefit.LSTSQ:
        cons = [c for c in graph.consumers.values() if out_group in c.groups()]
        if not cons or any(c.feats != rm.out_feats() for c in cons):
            raise CouplingError(f"refit needs consumers that read exactly the output of '{g.module}'; found "
                                f"{[c.path for c in cons]}")
        layer = stack.layers[idx]
        if calibration == "shape-only":  # replay: shapes only, the weights come from a state dict
            A, c = torch.zeros(out_size, in_size), torch.zeros(out_size)
        else:
            A, c = _fit_affine(model, layer, _calibration_inputs(calibration, n_batches), ridge)
        for con in cons:
            _fold(model, con.path, A, c)
    keep = [k for k in range(stack.num_layers) if k != idx]
    stack.layers = nn.ModuleList([stack.layers[k] for k in keep])
    stack.specs = [stack.specs[k] for k in keep]
    if idx == 0:
        stack.input_size = stack.layers[0].input_size


def _remove_torch_layer(model: nn.Module, rm, layer: int) -> None:
    old = model.get_submodule(rm.path)
    if rm.num_layers == 1:
        raise CouplingError(f"'{rm.path}' has a single layer; removing it would delete the module. Remove it from "
                            "the model's code instead")
    width = rm.out_units * rm.directions
    if layer == 0 and rm.input_size != width:
        raise CouplingError(f"cannot remove layer 0 of '{rm.path}': its input has {rm.input_size} features, its "
                            f"output {width}")
    new = {}
    for name, p in old.named_parameters():  # weight_ih_l{k}[_reverse] -> renumbered
        base, _, rest = name.rpartition("_l")
        k, tail = int(rest.split("_")[0]), rest[len(rest.split("_")[0]):]
        if k != layer:
            new[f"{base}_l{k - (k > layer)}{tail}"] = p.detach()
    replace_module(model, rm.path, rebuild_module(old, new, num_layers=rm.num_layers - 1))
