"""How one logical tensor is stored in the safetensors file.

A model may carry `model.tensor_encodings = {param_name: {"encoding": NAME, **options}}`;
anything not listed is stored dense. Each encoding turns one tensor into one or more
stored tensors (named `NAME` or `NAME::part`) plus a small JSON record, and back. This is
where sparse (bitmap / CSR) and packed low-bit storage plug in, so `artifact_bytes`
is the real size of what is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnslim.io.errors import ModelFormatError


@dataclass(frozen=True)
class Encoding:
    name: str
    # encode(tensor, options) -> (stored parts {suffix: tensor}, record); suffix "" = the name itself
    encode: Callable[[Tensor, dict], tuple[dict[str, Tensor], dict]]
    # decode(parts {suffix: tensor}, record) -> tensor
    decode: Callable[[dict[str, Tensor], dict], Tensor]


_REGISTRY: dict[str, Encoding] = {}


def register_encoding(enc: Encoding) -> Encoding:
    _REGISTRY[enc.name] = enc
    return enc


def get_encoding(name: str) -> Encoding:
    if name not in _REGISTRY:
        _load_builtin_encodings()
    if name not in _REGISTRY:
        raise ModelFormatError(f"unknown tensor encoding {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def _load_builtin_encodings() -> None:
    """Import modules that register encodings (kept lazy so `import rnnslim` stays light)."""
    import importlib

    for mod in ("rnnslim.io.sparse_encoding", "rnnslim.io.transform_encoding", "rnnslim.quantize.storage"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a module not written yet / optional
            if e.name is None or not mod.startswith(e.name):
                raise


def _dense_encode(t: Tensor, options: dict) -> tuple[dict[str, Tensor], dict]:
    dtype = options.get("dtype")
    if dtype:
        t = t.to(getattr(torch, dtype))
    return {"": t.contiguous()}, {}


def _dense_decode(parts: dict[str, Tensor], record: dict) -> Tensor:
    return parts[""]


register_encoding(Encoding("dense", _dense_encode, _dense_decode))


def part_key(name: str, suffix: str) -> str:
    return name if not suffix else f"{name}::{suffix}"
