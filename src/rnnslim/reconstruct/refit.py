"""Least-squares re-fit of a model after hidden units were removed, so that every op's
output on calibration data matches what the model computed before the cut.

    original = copy.deepcopy(model)
    result = prune_units_(model, StructuredPruning(ratio=0.58))
    refit_after_cut_(model, original, result, calibration=task)

For each op of the cut model, in forward order (SparseGPT-style sequential calibration:
an op sees the inputs that the already re-fitted ops before it produce), the weights are
the ridge least-squares solution of

    W' [x'; 1] ~= W [x; 1]   restricted to the output rows the op kept

with x the op's inputs in the original model and x' those in the cut model, over the same
calibration tokens (both models run in lockstep, state carried). The ops:

    LSTM / RNN gates   [W_ih' W_hh'] [x'; h'_{t-1}; 1] ~= W_ih x + W_hh h_{t-1} + b
                       (one joint fit: the input weights absorb lost recurrent units too;
                       the fitted bias goes to bias_ih and bias_hh becomes 0)
    GRU                W_ih' [x'; 1] and W_hh' [h'_{t-1}; 1] fitted apart (the n gate
                       multiplies the recurrent part by r, so the sum is not linear)
    LSTM projection    W_hr' r' ~= W_hr r            (r = o * tanh(c))
    Linear (decoder)   W' [x'; 1] ~= W x + b

The recurrent inputs h'_{t-1} depend on the weights being fitted, so each recurrent layer
is fitted `iterations` times, re-running the cut model in between.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnslim.graph.coupling import GroupKind
from rnnslim.prune.importance import as_calibration
from rnnslim.recurrent.gates import CellType, unit_rows
from rnnslim.recurrent.inputs import WeightInputs, forward, shared_parameters, weight_input_hooks
from rnnslim.reconstruct.hessian import module_of
from rnnslim.reconstruct.sequential import forward_groups
from rnnslim.utils.device import model_device
from rnnslim.utils.progress import progress_bar

_RNN_PARAM = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


@dataclass
class _Part:
    """One least-squares problem: these weights (and optionally one bias) map their inputs,
    concatenated, to the sum of the original op's outputs."""

    weights: list[str]
    bias: str | None
    zero_bias: str | None = None  # a second bias folded into `bias` (LSTM/RNN bias_hh)


def _parts(event: WeightInputs) -> list[_Part]:
    names = list(event.weights)
    ih = [n for n in names if "weight_ih" in n]
    if not ih:  # a Linear
        return [_Part(names, event.biases[0] if event.biases else None)]
    hh = [n for n in names if "weight_hh" in n]
    hr = [n for n in names if "weight_hr" in n]
    b_ih = next((b for b in event.biases if "bias_ih" in b), None)
    b_hh = next((b for b in event.biases if "bias_hh" in b), None)
    parts = [_Part(hr, None)] if hr else []
    if event.cell is CellType.GRU:
        return [_Part(ih, b_ih), _Part(hh, b_hh)] + parts
    return [_Part(ih + hh, b_ih or b_hh, b_hh if b_ih else None)] + parts


class _Normal:
    """Accumulates A = Z^T Z and B = Z^T Y for Z = [inputs..., 1] (float64)."""

    def __init__(self) -> None:
        self.A: Tensor | None = None
        self.B: Tensor | None = None

    def add(self, Z: Tensor, Y: Tensor) -> None:
        Z, Y = Z.double(), Y.double()
        a, b = Z.t() @ Z, Z.t() @ Y
        self.A = a if self.A is None else self.A + a
        self.B = b if self.B is None else self.B + b

    def solve(self, ridge: float) -> Tensor:
        A = self.A + ridge * torch.diag(self.A).mean() * torch.eye(self.A.shape[0], dtype=self.A.dtype)
        return torch.linalg.solve(A, self.B)  # (d, rows)


class RowMap:
    """Which rows of the original op each kept row of the cut op was (from a StructuredResult)."""

    def __init__(self, result) -> None:
        self.result = result

    def rows(self, name: str) -> Tensor | None:
        """Original row indices of param `name`'s rows, or None if its rows were not cut."""
        path, _, pname = name.rpartition(".")
        rm = self.result.modules.get(path)
        m = _RNN_PARAM.match(pname)
        if rm is None and path in self.result.keeps:  # a Linear whose output features were cut (input_proj)
            return torch.tensor(self.result.keeps[path])
        if rm is None or m is None:
            return None
        layer = int(m.group(3))
        if m.group(2) == "hr":
            units = self.result.keeps.get(rm.group_name(layer, GroupKind.PROJ))
            return None if units is None else torch.tensor(units)
        units = self.result.keeps.get(rm.group_name(layer))
        return None if units is None else unit_rows(rm.cell, rm.hidden_size, units)


def _design(event: WeightInputs, part: _Part) -> Tensor:
    cols = [event.weights[n] for n in part.weights]
    if part.bias is not None:
        cols.append(torch.ones(event.tokens, 1))
    return torch.cat(cols, 1)


def _target(event: WeightInputs, part: _Part, params: dict[str, Tensor], rows: Tensor | None) -> Tensor:
    """The original op's output (N, rows kept) for this part."""
    y = sum(event.weights[n] @ params[n].t() for n in part.weights)
    for b in (part.bias, part.zero_bias):
        if b is not None:
            y = y + params[b]
    return y if rows is None else y[:, rows]


@torch.no_grad()
def _fit_group(model: nn.Module, original: nn.Module, orig_params: dict[str, Tensor], group: list[str], cal,
               rowmap: RowMap, ridge: float) -> dict:
    """One lockstep pass over the calibration data, then the ridge solution for each part of
    the ops in `group` (names of one module layer); returns {part key: True} per fitted part.
    orig_params: the original model's parameters, float32 on the CPU."""
    eo: list[WeightInputs] = []
    en: list[WeightInputs] = []
    normals: dict[tuple, tuple[_Part, _Normal]] = {}
    wanted = set(group)
    device_o, device_n = model_device(original), model_device(model)
    with weight_input_hooks(original, eo.append, {module_of(group[0])}), \
            weight_input_hooks(model, en.append, {module_of(group[0])}):
        so = sn = None
        for batch in cal.batches:
            nxt_o = forward(original, batch.inputs.to(device_o), so)
            nxt_n = forward(model, batch.inputs.to(device_n), sn)
            so, sn = (nxt_o, nxt_n) if cal.stateful else (None, None)
            for a, b in zip(eo, en):
                if not wanted & set(b.weights):
                    continue
                for part in _parts(b):
                    normals.setdefault(tuple(part.weights), (part, _Normal()))[1].add(
                        _design(b, part), _target(a, part, orig_params, rowmap.rows(part.weights[0])))
            eo.clear()
            en.clear()
    return _install(model, normals, ridge)


def _install(model: nn.Module, normals: dict[tuple, tuple[_Part, _Normal]], ridge: float) -> dict:
    """Write each part's ridge solution into the model; {part key: True}."""
    out = {}
    for key, (part, normal) in normals.items():
        sol = normal.solve(ridge).t().float()  # (rows, d)
        start = 0
        for n in part.weights:
            p = model.get_parameter(n)
            p.copy_(sol[:, start:start + p.shape[1]].to(p))
            start += p.shape[1]
        if part.bias is not None:
            model.get_parameter(part.bias).copy_(sol[:, start].to(model.get_parameter(part.bias)))
        if part.zero_bias is not None:
            model.get_parameter(part.zero_bias).zero_()
        out[key] = True
    return out


def _embedding_consumers(model: nn.Module, result, cut: int) -> list[str]:
    """weight_ih_l0[_reverse] names of the recurrent modules whose input width shrank by `cut`."""
    names = []
    for path, rm in result.modules.items():
        mod = model.get_submodule(path)
        if isinstance(mod, nn.RNNBase) and rm.input_size - mod.input_size == cut:
            names += [f"{path}.weight_ih_l0"] + ([f"{path}.weight_ih_l0_reverse"] if mod.bidirectional else [])
    return names


@torch.no_grad()
def _fold_embedding_cuts_(model: nn.Module, original: nn.Module, result, cal) -> list[str]:
    """After an embedding-width cut, choose the new embedding and layer-0 input weights together.

    Layer 0 only ever sees V distinct input vectors, so what matters is M = W_ih E^T
    (kept gate rows of every consumer, stacked: (R, V)). Its best rank-k factorisation under
    token-frequency weights D (truncated SVD of M D = U S V^T) gives W_ih' = U_k S_k^1/2 and
    E'^T = S_k^1/2 V_k^T D^-1: balanced factors. Keeping the old embedding columns instead
    leaves a least-squares fit from k < V points that interpolates with huge weights
    (measured: 20x the original RMS on charlstm-512x2 cut to 64 features), which fine-tuning
    then struggles with. Returns the embeddings folded."""
    rowmap, folded, modules = RowMap(result), [], dict(model.named_modules())
    for path, keep in result.keeps.items():
        emb = modules.get(path)
        if not isinstance(emb, nn.Embedding):
            continue
        E0 = original.get_submodule(path).weight.detach().double().cpu()  # (V, E)
        consumers = _embedding_consumers(model, result, E0.shape[1] - len(keep))
        if not consumers:
            continue
        rows = [rowmap.rows(n) for n in consumers]
        W = [original.get_parameter(n).detach().double().cpu() for n in consumers]
        M = torch.cat([(w if r is None else w[r]) @ E0.t() for w, r in zip(W, rows)])  # (R, V)
        counts = torch.ones(E0.shape[0], dtype=torch.float64)
        for b in cal.batches:
            counts += torch.bincount(b.inputs.reshape(-1).cpu(), minlength=E0.shape[0]).double()[: E0.shape[0]]
        d = (counts / counts.sum()).sqrt()  # (V,)
        U, S, Vh = torch.linalg.svd(M * d, full_matrices=False)
        k = len(keep)
        root = S[:k].sqrt()
        emb.weight.copy_(((root.unsqueeze(1) * Vh[:k]) / d).t().to(emb.weight))  # (V, k)
        A, start = U[:, :k] * root, 0
        for n in consumers:
            p = model.get_parameter(n)
            p.copy_(A[start:start + p.shape[0]].to(p))
            start += p.shape[0]
        folded.append(path)
    return folded


def refit_after_cut_(model: nn.Module, original: nn.Module, result, calibration, iterations: int = 2,
                     ridge: float = 1e-3, names: Sequence[str] | None = None, n_batches: int = 16,
                     progress: bool = False) -> dict:
    """Re-fit the cut `model` in place to reproduce `original` op by op (see module doc).

    result: the StructuredResult of the cut (which units each layer kept); calibration: a
    Task, Calibration or batches; names: the weights to re-fit (default: every weight of
    every recurrent module and Linear, in forward order). Atomic: on failure the model's
    weights are restored. Returns {"ops": number of least-squares fits, "iterations": ...}.
    """
    cal = as_calibration(calibration, n_batches)
    if names is None:  # tied weights (a decoder sharing the embedding) are left alone
        tied = shared_parameters(model)
        names = [n for n, _ in model.named_parameters() if _is_op_weight(model, n) and n not in tied]
    backup = {n: p.detach().clone() for n, p in model.named_parameters()}
    was = (model.training, original.training)
    model.eval()
    original.eval()
    rowmap, fits = RowMap(result), 0
    orig_params = {n: p.detach().float().cpu() for n, p in original.named_parameters()}
    groups = forward_groups(model, names)
    passes = [(g, i) for g in groups for i in range(iterations if _is_recurrent(g) else 1)]
    bar = progress_bar(total=len(passes), desc="refit", enabled=progress)
    folded: list[str] = []
    try:
        folded = _fold_embedding_cuts_(model, original, result, cal)
        for group, _ in passes:
            fits += len(_fit_group(model, original, orig_params, group, cal, rowmap, ridge))
            bar.update(1, op=module_of(group[0]))
    except BaseException:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(backup[n])
        raise
    finally:
        bar.close()
        model.train(was[0])
        original.train(was[1])
    return {"ops": fits, "iterations": iterations, "ridge": ridge, "calibration_batches": len(cal.batches),
            "embeddings_folded": folded}


def _is_recurrent(group: list[str]) -> bool:
    return any(_RNN_PARAM.match(n.rpartition(".")[2]) for n in group)


def _is_op_weight(model: nn.Module, name: str) -> bool:
    mod = model.get_submodule(module_of(name))
    pname = name.rpartition(".")[2]
    if isinstance(mod, nn.RNNBase):
        return pname.startswith("weight_")
    return isinstance(mod, nn.Linear) and pname == "weight"
