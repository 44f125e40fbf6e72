"""Where a SequenceModel can be factorized ("sites"), and the surgery that does it.

A site is one matrix M = left @ right that is cut to rank r, with the tensors it replaces:

    input.k      M = W_ih of layer k (G*H*D, I), both directions stacked
                   layer 0, embedding input:  M = W_ih @ E^T (G*H, V): the layer only ever sees
                     the V embedding rows, so the fold is exact at r = V. New embedding
                     (V, r) = right^T, weight_ih = left; embed_size becomes r.
                   layer 0, Linear input:     M = W_ih @ W_p (G*H, F); input_proj (r, F) = right,
                     its bias 0, b_ih += W_ih @ b_p (exact).   identity input: input_proj = right.
                   other layers (and layer 0 of a tied model): a bias-free bottleneck Linear
                     rnn.bottlenecks.k (r, I) = right in front of the layer, weight_ih = left;
                     an existing bottleneck B is folded in first (M = W_ih @ B).
    recurrent.k  LSTM -> LSTMP. Every matrix that reads h_t = o * tanh(c) (H) of layer k is
                   stacked: R = [W_hh_k; next reader], next reader = rnn.bottlenecks.{k+1} or
                   W_ih_{k+1} (both directions), or for the last layer decoder_proj / decoder.
                   With an existing projection h = W_hr r, M = R @ W_hr. Rank P:
                   W_hr = right = V_P^T (P, H), every reader's new weight = its rows of
                   left = U_P S_P, so reader @ h' = (U_P S_P V_P^T)[rows] r = M_P[rows] r.
                   torch needs P < H.
    output       M = decoder.weight (O, I) [@ decoder_proj]; decoder_proj (r, I) = right (no bias),
                   decoder (O, r) = left, bias kept.

`per_gate` cuts every gate (and direction) block of W_ih on its own: right stacks the
blocks' V^T, left is block-diagonal (stored dense: the fused kernel needs one matrix).
Costs are parameters per unit of rank; a site never costs more than the tensors it replaces
unless an explicit rank asks for it. With the Gram matrices of the inputs each M multiplies
(lowrank.calibrate), the SVD is data-aware (svd.spectrum): left = U_r, right = U_r^T M, the
rank-r M with the least output error on the calibration data rather than weight error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor, nn

from rnnslim.lowrank.svd import Spectrum, spectrum
from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.recurrent.gates import CellType, cell_of_module
from rnnslim.recurrent.stack import LayerSpec, make_layer


Grams = dict[str, Tensor] | None  # lowrank.calibrate.input_grams: data-aware SVD; None: plain SVD of the weights


class SiteKind(str, Enum):
    INPUT = "input"  # W_ih
    RECURRENT = "recurrent"  # W_hh (LSTM: by conversion to LSTMP)
    OUTPUT = "output"  # the decoder


@dataclass
class Site:
    name: str  # "input.0", "recurrent.1", "output"
    kind: SiteKind
    layer: int | None
    mode: str  # input: fold_embedding | fold_linear | fold_identity | bottleneck; recurrent: lstmp; output: head
    spectra: list[Spectrum]  # one, or one per gate block (per_gate input)
    rows: list[int]  # rows of each block (block-diagonal left for per_gate)
    cost: int  # parameters per unit of rank
    dense_params: int  # parameters of the tensors this site replaces
    max_rank: int  # per block: the mathematical limit (LSTMP: H - 1)
    readers: list[tuple[str, int]] = field(default_factory=list)  # recurrent: (reader, rows) in stacking order

    @property
    def total(self) -> float:
        return sum(sp.total for sp in self.spectra)

    def break_even(self) -> int:
        """Largest rank per block that still saves parameters (0 if none does)."""
        return max(0, (self.dense_params - 1) // (self.cost * len(self.spectra)))

    def energy(self, ranks: list[int]) -> float:
        return sum(sp.kept(r) for sp, r in zip(self.spectra, ranks)) / self.total if self.total > 0 else 1.0


def _layer(model: SequenceModel, k: int) -> nn.RNNBase:
    layer = model.rnn.layers[k]
    if type(layer) not in (nn.LSTM, nn.GRU, nn.RNN):
        raise TypeError(f"rnn.layers.{k} is a {type(layer).__name__}, not a float torch LSTM/GRU/RNN: factorize "
                        "before quantizing (quantization stages come after lowrank / to_lstmp)")
    return layer


def _sfx(layer: nn.RNNBase) -> list[str]:
    return ["_l0", "_l0_reverse"] if layer.bidirectional else ["_l0"]


def _w(layer: nn.RNNBase, base: str) -> Tensor:
    """weight `base` of every direction stacked along rows."""
    return torch.cat([getattr(layer, base + s).detach() for s in _sfx(layer)], 0)


def _neck(model: SequenceModel, k: int) -> nn.Linear | None:
    necks = model.rnn.bottlenecks
    return necks[k] if necks is not None and isinstance(necks[k], nn.Linear) else None


def _numel(*ts) -> int:
    return sum(t.numel() for t in ts)


def _gram(grams: Grams, name: str) -> Tensor | None:
    if grams is None:
        return None
    if name not in grams:
        raise ValueError(f"the calibration data never reached {name}; cannot weight its SVD by its inputs")
    return grams[name]


def input_site(model: SequenceModel, k: int, per_gate: bool, grams: Grams = None) -> Site:
    layer = _layer(model, k)
    w = _w(layer, "weight_ih")  # (D*G*H, I)
    neck = _neck(model, k)
    spec = model.spec
    x_of = f"rnn.layers.{k}.weight_ih_l0"  # whose inputs weight the data-aware SVD
    if neck is not None:
        mode, m, dense, cols = "bottleneck", w @ neck.weight.detach(), _numel(w, neck.weight), neck.in_features
        x_of = f"rnn.bottlenecks.{k}.weight"
    elif k > 0 or spec.tie_weights or spec.input_window > 1 or spec.input_padding or \
            spec.input_activation.value != "none":  # a CRNN front end: input_proj does not fold into W_ih
        mode, m, dense, cols = "bottleneck", w, _numel(w), w.shape[1]
    elif spec.input_kind is InputKind.EMBEDDING:
        emb = model.embedding.weight.detach()  # (V, E)
        mode, m, dense, cols = "fold_embedding", w @ emb.t(), _numel(w, emb), emb.shape[0]
        x_of = "embedding.weight"  # token counts
    elif spec.input_kind is InputKind.LINEAR:
        p = model.input_proj
        if p.bias is not None and layer.bias is False:
            raise ValueError("folding input_proj's bias needs rnn.layers.0 to have biases")
        mode, m = "fold_linear", w @ p.weight.detach()
        dense, cols = _numel(w, *p.parameters()), p.in_features
        x_of = "input_proj.weight"
    else:
        mode, m, dense, cols = "fold_identity", w, _numel(w), w.shape[1]
    g = _gram(grams, x_of)
    extra = 1 if mode in ("fold_linear", "fold_identity") else 0  # input_proj keeps a bias per unit
    H = layer.hidden_size
    blocks = list(m.split(H, 0)) if per_gate else [m]
    return Site(f"input.{k}", SiteKind.INPUT, k, mode, [spectrum(b, g) for b in blocks], [b.shape[0] for b in blocks],
                cost=m.shape[0] + cols + extra, dense_params=dense, max_rank=min(min(b.shape) for b in blocks))


def _reader_tensors(model: SequenceModel, k: int) -> list[tuple[str, Tensor]]:
    """The matrices that read layer k's output h, in stacking order (see the module docstring)."""
    layer = _layer(model, k)
    out = [("hh", _w(layer, "weight_hh"))]
    if k + 1 < model.rnn.num_layers:
        neck = _neck(model, k + 1)
        out.append(("neck", neck.weight.detach()) if neck is not None
                   else ("ih_next", _w(_layer(model, k + 1), "weight_ih")))
    elif model.spec.decoder_rank:
        out.append(("decoder_proj", model.decoder_proj.weight.detach()))
    else:
        out.append(("decoder", model.decoder.weight.detach()))
    return out


def recurrent_site(model: SequenceModel, k: int, grams: Grams = None) -> Site:
    layer = _layer(model, k)
    cell = cell_of_module(layer)
    if cell is not CellType.LSTM:
        raise ValueError(f"rnn.layers.{k} is a {cell.value.upper()}: a low-rank W_hh needs a projection of h, which "
                         "torch has only for LSTM (proj_size). For GRU / RNN use targets [input, output] "
                         "(lowrank) or shrink the hidden size with structured pruning (prune_units)")
    if layer.bidirectional:
        raise ValueError(f"rnn.layers.{k} is bidirectional: conversion to LSTMP supports one direction only")
    if k == model.rnn.num_layers - 1 and model.spec.tie_weights:
        raise ValueError("the last layer's output feeds a decoder tied to the embedding; LSTMP would untie them")
    readers = _reader_tensors(model, k)
    m = torch.cat([t for _, t in readers], 0)  # (R, P_old or H)
    dense = _numel(m)
    if layer.proj_size:
        w_hr = layer.weight_hr_l0.detach()  # (P_old, H)
        m, dense = m @ w_hr, dense + _numel(w_hr)
    H = layer.hidden_size
    # inputs: r_t = o * tanh(c) (H): the projection's input, or h_{t-1} as W_hh sees it (= r, one step late)
    g = _gram(grams, f"rnn.layers.{k}.weight_hr_l0" if layer.proj_size else f"rnn.layers.{k}.weight_hh_l0")
    return Site(f"recurrent.{k}", SiteKind.RECURRENT, k, "lstmp", [spectrum(m, g)], [m.shape[0]], cost=m.shape[0] + H,
                dense_params=dense, max_rank=min(H - 1, m.shape[0]), readers=[(n, t.shape[0]) for n, t in readers])


def output_site(model: SequenceModel, grams: Grams = None) -> Site:
    if model.spec.tie_weights:
        raise ValueError("the decoder is tied to the embedding; a low-rank head would untie them (drop target output)")
    w = model.decoder.weight.detach()
    dense = _numel(w)
    if model.spec.decoder_rank:
        p = model.decoder_proj.weight.detach()
        w, dense = w @ p, dense + _numel(p)
    g = _gram(grams, "decoder_proj.weight" if model.spec.decoder_rank else "decoder.weight")
    return Site("output", SiteKind.OUTPUT, None, "head", [spectrum(w, g)], [w.shape[0]], cost=sum(w.shape),
                dense_params=dense, max_rank=min(w.shape))


# --- surgery ---------------------------------------------------------------------------
def factors(site: Site, ranks: list[int], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(left (rows, sum r), right (sum r, cols)); left is block-diagonal for per-gate blocks."""
    pairs = [sp.factors(r, dtype) for sp, r in zip(site.spectra, ranks)]
    if len(pairs) == 1:
        return pairs[0]
    return torch.block_diag(*[a for a, _ in pairs]), torch.cat([b for _, b in pairs], 0)


def rebuilt(layer: nn.RNNBase, tensors: dict[str, Tensor], input_size: int | None = None,
            proj_size: int | None = None) -> nn.RNNBase:
    """A copy of a single-layer torch module with new sizes; `tensors` replace its weights by name."""
    spec = LayerSpec(layer.hidden_size, getattr(layer, "proj_size", 0) if proj_size is None else proj_size,
                     layer.bidirectional)
    ref = next(layer.parameters())
    new = make_layer(cell_of_module(layer), input_size or layer.input_size, spec, layer.bias, layer.batch_first)
    new = new.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for name, p in new.named_parameters():
            p.copy_(tensors[name] if name in tensors else getattr(layer, name))
    return new.train(layer.training)


def _by_direction(layer: nn.RNNBase, base: str, t: Tensor) -> dict[str, Tensor]:
    """Rows of a direction-stacked weight back to {base_l0: .., base_l0_reverse: ..}."""
    return dict(zip((base + s for s in _sfx(layer)), t.chunk(len(_sfx(layer)), 0)))


def _put_layer(model: SequenceModel, k: int, new: nn.RNNBase) -> None:
    old = model.rnn.specs[k]
    model.rnn.replace_layer(k, LayerSpec(old.hidden_size, getattr(new, "proj_size", 0), old.bidirectional,
                                         old.input_rank), new)


def _linear(weight: Tensor, bias: Tensor | None, like: Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(device=like.device, dtype=like.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def apply_input(model: SequenceModel, site: Site, left: Tensor, right: Tensor) -> None:
    k, r = site.layer, right.shape[0]
    layer = _layer(model, k)
    like = layer.weight_ih_l0
    tensors = _by_direction(layer, "weight_ih", left.to(like))
    if site.mode == "bottleneck":
        model.rnn.set_bottleneck(k, _linear(right, None, like))
    elif site.mode == "fold_embedding":
        old = model.embedding
        emb = nn.Embedding(right.shape[1], r).to(device=like.device, dtype=old.weight.dtype)
        with torch.no_grad():
            emb.weight.copy_(right.t())
        model.embedding = emb.train(old.training)
    else:  # fold_linear / fold_identity: a new input_proj (r, F) with zero bias
        F = right.shape[1]
        old = getattr(model, "input_proj", None)
        if old is not None and old.bias is not None:  # b_ih += W_ih @ b_p (exact: the bias moves past W_ih)
            w, b = _w(layer, "weight_ih"), old.bias.detach()
            for name, extra in _by_direction(layer, "weight_ih", w @ b.unsqueeze(1)).items():
                bname = name.replace("weight_ih", "bias_ih")
                tensors[bname] = getattr(layer, bname).detach() + extra.squeeze(1)
        model.input_proj = _linear(right, torch.zeros(r, dtype=right.dtype), like)
        if site.mode == "fold_identity":
            model.spec = model.spec.model_copy(update={"input_kind": InputKind.LINEAR, "input_size": F})
    _put_layer(model, k, rebuilt(layer, tensors, input_size=r))
    if k == 0:
        model.rnn.input_size = model.rnn.bottlenecks[0].in_features if _neck(model, 0) is not None else r


def apply_recurrent(model: SequenceModel, site: Site, left: Tensor, right: Tensor) -> None:
    k, P = site.layer, right.shape[0]
    layer = _layer(model, k)
    like = layer.weight_hh_l0
    parts = dict(zip([n for n, _ in site.readers], left.to(like).split([rows for _, rows in site.readers], 0)))
    _put_layer(model, k, rebuilt(layer, {"weight_hh_l0": parts["hh"], "weight_hr_l0": right.to(like)}, proj_size=P))
    if "ih_next" in parts:
        nxt = _layer(model, k + 1)
        _put_layer(model, k + 1, rebuilt(nxt, _by_direction(nxt, "weight_ih", parts["ih_next"]), input_size=P))
    elif "neck" in parts:
        model.rnn.set_bottleneck(k + 1, _linear(parts["neck"], None, like))
    elif "decoder_proj" in parts:
        model.decoder_proj = _linear(parts["decoder_proj"], None, like)
    else:
        dec = model.decoder
        model.decoder = _linear(parts["decoder"], None if dec.bias is None else dec.bias.detach(), like)


def apply_output(model: SequenceModel, site: Site, left: Tensor, right: Tensor) -> None:
    dec = model.decoder
    like = dec.weight
    model.decoder_proj = _linear(right, None, like)
    model.decoder = _linear(left, None if dec.bias is None else dec.bias.detach(), like)
    model.spec = model.spec.model_copy(update={"decoder_rank": right.shape[0]})


APPLY = {SiteKind.INPUT: apply_input, SiteKind.RECURRENT: apply_recurrent, SiteKind.OUTPUT: apply_output}
