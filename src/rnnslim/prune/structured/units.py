"""Physical removal of units: slice every coupled tensor and rebuild smaller modules.

A list of Cuts (graph/groups.py) becomes, per (parameter, dim), a mask of positions to
keep; each touched module is rebuilt as a new torch module of the smaller shape with the
sliced tensors (nn.LSTM/GRU/RNN, nn.Linear, nn.Conv1d) and put in place of the old one.
Layers of a RecurrentStack are swapped with `stack.replace_layer` (its specs follow) and
any module with `sync_spec()` (SequenceModel) refreshes its ModelSpec afterwards.

A multi-layer torch nn.LSTM/GRU/RNN holds one hidden size for all its layers. A cut that
keeps the same number of units in every layer rebuilds it as the same kind of module; a cut
that leaves layers of different sizes rebuilds it as a TorchContractStack of single-layer
torch modules (recurrent/torch_contract.py): called the same way, except that with unequal
sizes its state is a list with one entry per layer (torch's one tensor cannot hold them).
Models built on rnnslim's RecurrentStack (SequenceModel) have no such limit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnslim.graph.groups import Cut
from rnnslim.io.modules import set_submodule
from rnnslim.recurrent.gates import cell_of_module, gate_count
from rnnslim.recurrent.stack import LayerSpec, RecurrentStack, make_layer


def keep_masks(cuts: list[Cut]) -> dict[tuple[str, int], Tensor]:
    """(parameter name, dim) -> bool mask of positions that survive all cuts."""
    masks: dict[tuple[str, int], Tensor] = {}
    for cut in cuts:
        removed = cut.removed
        for s in cut.group.slices:
            mask = masks.setdefault((s.param, s.dim), torch.ones(len(s.units), dtype=torch.bool))
            mask &= ~torch.isin(s.units, removed)
    return masks


def _rebuild_recurrent(old: nn.RNNBase, new: dict[str, Tensor], num_layers: int) -> nn.RNNBase:
    cell = cell_of_module(old)
    get = lambda n: new.get(n, getattr(old, n, None))  # noqa: E731
    proj = get("weight_hr_l0").shape[0] if getattr(old, "proj_size", 0) else 0
    hidden = get("weight_hr_l0").shape[1] if proj else get("weight_hh_l0").shape[1]
    input_size = get("weight_ih_l0").shape[1]
    G = gate_count(cell)
    sfxs = [f"_l{k}" + r for k in range(num_layers) for r in ([""] + (["_reverse"] if old.bidirectional else []))]
    for sfx in sfxs:  # every layer of a torch module must agree on (hidden, proj)
        rows, cols = get("weight_hh" + sfx).shape
        if rows != G * hidden or cols != (proj or hidden):
            return None  # layers of different sizes: the caller builds a per-layer stack
    if num_layers == 1:
        return make_layer(cell, input_size, LayerSpec(hidden, proj, old.bidirectional), old.bias, old.batch_first)
    kwargs = dict(input_size=input_size, hidden_size=hidden, num_layers=num_layers, bias=old.bias,
                  batch_first=old.batch_first, dropout=old.dropout, bidirectional=old.bidirectional)
    if isinstance(old, nn.LSTM):
        kwargs["proj_size"] = proj
    if isinstance(old, nn.RNN):
        kwargs["nonlinearity"] = old.nonlinearity
    return type(old)(**kwargs)


def _per_layer_stack(old: nn.RNNBase, new: dict[str, Tensor], num_layers: int) -> nn.Module:
    """A multi-layer torch module whose layers now differ in size, as single-layer torch modules
    of their own sizes behind torch's calling convention (TorchContractStack)."""
    from rnnslim.recurrent.torch_contract import TorchContractStack

    cell = cell_of_module(old)
    get = lambda n: new[n] if n in new else getattr(old, n, None)  # noqa: E731
    ref = next(old.parameters())
    layers = []
    for k in range(num_layers):
        w_hh, w_hr = get(f"weight_hh_l{k}"), get(f"weight_hr_l{k}") if getattr(old, "proj_size", 0) else None
        spec = LayerSpec(w_hr.shape[1] if w_hr is not None else w_hh.shape[1], w_hr.shape[0] if w_hr is not None else 0,
                         old.bidirectional)
        layer = make_layer(cell, get(f"weight_ih_l{k}").shape[1], spec, old.bias).to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name, p in layer.named_parameters():  # weight_ih_l0[_reverse] <- weight_ih_l{k}[_reverse]
                p.copy_(get(name.replace("_l0", f"_l{k}")))
                p.requires_grad_(ref.requires_grad)
        layers.append(layer)
    stack = TorchContractStack.from_layers(old, layers)
    stack.input_size, stack.hidden_size = layers[0].input_size, layers[-1].hidden_size
    return stack.train(old.training)


def rebuild_module(old: nn.Module, new: dict[str, Tensor], num_layers: int | None = None) -> nn.Module:
    """A module like `old` shaped for the tensors in `new` (others copied from `old`).

    num_layers: for recurrent modules, the new layer count (layer removal); `new` then
    holds every parameter under its new name.
    """
    w = new.get("weight", getattr(old, "weight", None))
    if isinstance(old, nn.RNNBase):
        mod = _rebuild_recurrent(old, new, num_layers or old.num_layers)
        if mod is None:
            return _per_layer_stack(old, new, num_layers or old.num_layers)
    elif isinstance(old, nn.Linear):
        mod = nn.Linear(w.shape[1], w.shape[0], bias=old.bias is not None)
    elif isinstance(old, nn.Conv1d):
        mod = nn.Conv1d(w.shape[1] * old.groups, w.shape[0], old.kernel_size, old.stride, old.padding, old.dilation,
                        old.groups, old.bias is not None, old.padding_mode)
    elif isinstance(old, nn.Embedding):  # same rows (width cut): padding_idx stays; prune_vocab sets its own
        pad = old.padding_idx if w.shape[0] == old.num_embeddings else None
        mod = nn.Embedding(w.shape[0], w.shape[1], padding_idx=pad, max_norm=old.max_norm, norm_type=old.norm_type,
                           scale_grad_by_freq=old.scale_grad_by_freq, sparse=old.sparse)
    else:
        raise TypeError(f"rnnslim cannot rebuild a {type(old).__name__} with fewer units")
    ref = next(old.parameters())
    mod = mod.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            src = new[name] if name in new else getattr(old, name)
            if tuple(src.shape) != tuple(p.shape):
                raise RuntimeError(f"internal error: {type(old).__name__}.{name} sliced to {tuple(src.shape)}, "
                                   f"rebuilt module expects {tuple(p.shape)}")
            p.copy_(src)
            p.requires_grad_(src.requires_grad if isinstance(src, nn.Parameter) else ref.requires_grad)
    return mod.train(old.training)


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put `new` at `path`; layers of a RecurrentStack go through replace_layer (specs follow)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    if leaf.isdigit() and isinstance(parent, nn.ModuleList) and isinstance(new, nn.RNNBase):
        stack = model.get_submodule(parent_path.rpartition(".")[0])
        if isinstance(stack, RecurrentStack) and stack.layers is parent:
            spec = LayerSpec(new.hidden_size, getattr(new, "proj_size", 0), new.bidirectional)
            stack.replace_layer(int(leaf), spec, new)
            if int(leaf) == 0:
                stack.input_size = new.input_size
            return
    set_submodule(model, path, new)


def sync_specs(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "sync_spec") and callable(m.sync_spec):
            m.sync_spec()


def apply_cuts_(model: nn.Module, cuts: list[Cut]) -> list[str]:
    """Slice all tensors the cuts touch and rebuild those modules; returns the rebuilt paths."""
    params = dict(model.named_parameters())
    sliced: dict[str, dict[str, Tensor]] = {}
    for (pname, dim), mask in keep_masks(cuts).items():
        mpath, _, attr = pname.rpartition(".")
        cur = sliced.setdefault(mpath, {}).get(attr, params[pname].detach())
        if cur.shape[dim] != mask.numel():
            raise RuntimeError(f"internal error: {pname} dim {dim} has {cur.shape[dim]} positions, the cut expects "
                               f"{mask.numel()}")
        sliced[mpath][attr] = cur.index_select(dim, torch.nonzero(mask).flatten().to(cur.device)).clone()
    ties = [names for names in _aliases(model) if len(names) > 1]
    for mpath, new in sliced.items():
        replace_module(model, mpath, rebuild_module(model.get_submodule(mpath), new))
    _retie(model, ties)
    sync_specs(model)
    return list(sliced)


def _aliases(model: nn.Module) -> list[list[str]]:
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return list(seen.values())


def _retie(model: nn.Module, ties: list[list[str]]) -> None:
    """Point every alias of a tied tensor at the (possibly rebuilt) tensor of its first name,
    and update the sizes a Linear / Embedding reports (decoder.weight = encoder.weight)."""
    for names in ties:
        first = model.get_parameter(names[0])
        for name in names[1:]:
            mpath, _, attr = name.rpartition(".")
            mod = model.get_submodule(mpath)
            if getattr(mod, attr) is first:
                continue
            setattr(mod, attr, first)
            if isinstance(mod, nn.Linear) and attr == "weight":
                mod.out_features, mod.in_features = first.shape
            elif isinstance(mod, nn.Embedding) and attr == "weight":
                mod.num_embeddings, mod.embedding_dim = first.shape


def slice_module_state(state, keep_out: list[Tensor], keep_hidden: list[Tensor], directions: int):
    """Slice a torch-format state (h (L*D, B, P) or (h, c) with c (L*D, B, H)) to kept units.

    keep_out[l] / keep_hidden[l]: kept output / hidden units of layer l (None: all).
    """
    def one(t: Tensor, keeps: list[Tensor]) -> Tensor:
        parts = []
        for layer, k in enumerate(keeps):
            block = t[layer * directions:(layer + 1) * directions]
            parts.append(block if k is None else block.index_select(-1, k.to(t.device)))
        return torch.cat(parts, 0)

    if isinstance(state, tuple):
        return one(state[0], keep_out), one(state[1], keep_hidden)
    return one(state, keep_out)
