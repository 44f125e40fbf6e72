"""Non-torch modules inside a model (quantized layers, factorized layers, ...).

A module class that is not rebuilt by ModelSpec alone declares
`rnnslim_kind: str` and `rnnslim_config() -> dict`, and registers a builder
`register_module_kind(kind, build)` where `build(config) -> nn.Module` returns a module
with the right tensor shapes (values are loaded from the weights file afterwards).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rnnslim.io.errors import ModelFormatError
from rnnslim.recurrent.torch_contract import TorchContractStack

_BUILDERS: dict[str, Callable[[dict], nn.Module]] = {}


def register_module_kind(kind: str, build: Callable[[dict], nn.Module]) -> None:
    _BUILDERS[kind] = build


# the recurrent layer's own kind: rnnslim.recurrent sits below io and does not register itself
register_module_kind(TorchContractStack.rnnslim_kind, lambda config: TorchContractStack(**config))


def module_records(model: nn.Module) -> list[dict]:
    out = []
    for path, mod in model.named_modules():
        kind = getattr(type(mod), "rnnslim_kind", None)
        if kind and path:
            out.append({"path": path, "kind": kind, "config": mod.rnnslim_config()})
    return out


def _ensure_builtin_kinds() -> None:
    import importlib

    for mod in ("rnnslim.quantize.modules", "rnnslim.quantize.int8.modules", "rnnslim.factorize.modules",
                "rnnslim.early_exit.heads", "rnnslim.lowrank.linear"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise


def set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, new) if not leaf.isdigit() else parent.__setitem__(int(leaf), new)


def rebuild_modules(model: nn.Module, records: list[dict]) -> None:
    if records:
        _ensure_builtin_kinds()
    for rec in records:
        build = _BUILDERS.get(rec["kind"])
        if build is None:
            raise ModelFormatError(f"module {rec['path']} has kind {rec['kind']!r}, which this rnnslim cannot build")
        set_submodule(model, rec["path"], build(rec["config"]))
