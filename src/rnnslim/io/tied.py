"""A tied embedding / decoder stays one stored matrix after quantization.

A tied model (spec.tie_weights) has one float matrix (V, E) used by the embedding and the
decoder. Quantizing each layer separately (quantize_ weight-only, int8 dynamic / static)
gives two copies of the same codes and scales, so the artifact was as large as an untied
one. `tie_quantized_` makes the decoder's weight buffers the embedding's own tensors (rnnslim.io
stores a shared tensor once, under the embedding's name) and `retie_after_load_` redoes it
when a saved model is loaded. Buffers are shared only where both layers hold the same name,
shape, dtype and values. The fully integer model ties itself when it is built
(IntegerLinear.tied_to: the decoder's `weight` is the embedding's int8 table, its per-row
`weight_scale` its own): saving stores `decoder.weight` once, under `embedding.weight`, and
retie_after_load_ shares it again at load like any other alias.
It lives in io, beside the format that relies on it (io/format.py re-ties at load); the
quantizers (rnnslim.quantize) call tie_quantized_ after they convert the two layers.
"""

from __future__ import annotations

import torch
from torch import nn


def _tieable(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    spec = getattr(model, "spec", None)
    emb, dec = getattr(model, "embedding", None), getattr(model, "decoder", None)
    if not getattr(spec, "tie_weights", False) or emb is None or dec is None:
        return None
    if isinstance(emb, nn.Embedding) or isinstance(dec, nn.Linear):  # float: tied by the model itself
        return None
    return emb, dec


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (module.get_submodule(path) if path else module), leaf


def _weight_buffer_names(module: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers that hold the weight (codes, scales, zero points); the decoder's bias and input scale are its own."""
    return {n: b for n, b in module.named_buffers() if n.split(".")[-1] not in ("bias", "in_scale")}


def tie_quantized_(model: nn.Module) -> list[str]:
    """Share the quantized decoder's weight buffers with the embedding's where equal; returns
    the decoder buffer names now shared (empty: nothing to tie)."""
    pair = _tieable(model)
    if pair is None:
        return []
    emb, dec = pair
    theirs, mine = _weight_buffer_names(emb), _weight_buffer_names(dec)
    same = [n for n, b in mine.items() if n in theirs and b.shape == theirs[n].shape and b.dtype == theirs[n].dtype
            and torch.equal(b, theirs[n])]
    if not same or len(same) != len(mine):  # all or nothing: a half-shared weight would be a third format
        return []
    for n in same:
        owner, leaf = _owner(dec, n)
        owner._buffers[leaf] = theirs[n]
    return [f"decoder.{n}" for n in same]


def retie_after_load_(model: nn.Module, missing: list[str]) -> None:
    """After load_state_dict: point the decoder buffers `missing` from the file (stored once,
    under the embedding's names) at the embedding's tensors; raises ValueError when one cannot be."""
    pair = _tieable(model)
    if pair is None and missing == ["decoder.weight"] and isinstance(getattr(model, "decoder", None), nn.Linear):
        return  # a float tied model: SequenceModel ties decoder.weight itself
    if not missing:
        return
    if pair is None:
        raise ValueError(f"tensor {missing[0]} is not stored and the model has no tied quantized decoder to share it")
    emb, dec = pair
    theirs = _weight_buffer_names(emb)
    for key in missing:
        n = key.removeprefix("decoder.")
        owner, leaf = _owner(dec, n)
        mine = owner._buffers.get(leaf)
        if n not in theirs or mine is None or mine.shape != theirs[n].shape or mine.dtype != theirs[n].dtype:
            raise ValueError(f"tensor {key} is not stored and the embedding has no tensor of its shape to share")
        owner._buffers[leaf] = theirs[n]


def is_tied_quantized_alias(model: nn.Module, key: str, tensors: dict) -> bool:
    """Whether `key` is a decoder weight buffer that a tied quantized model stores under the embedding's name."""
    if not key.startswith("decoder.") or _tieable(model) is None:
        return False
    n = key.removeprefix("decoder.")
    return n.split(".")[-1] not in ("bias", "in_scale") and f"embedding.{n}" in tensors
