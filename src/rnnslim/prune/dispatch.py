"""`prune_(model, config)`: one verb, dispatched on the config's type.

Mask-based methods register here; other pruning modules (structured) can add their
config types with `register_pruner(ConfigClass)(fn)` where fn(model, cfg, calibration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_PRUNERS: dict[type, Callable[..., Any]] = {}


def register_pruner(config_cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _PRUNERS[config_cls] = fn
        return fn

    return deco


def _register_builtin() -> None:
    from rnnslim.prune.patterns import BlockPruning, NMPruning, prune_block_, prune_nm_
    from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_

    _PRUNERS.setdefault(UnstructuredPruning, prune_unstructured_)
    _PRUNERS.setdefault(NMPruning, prune_nm_)
    _PRUNERS.setdefault(BlockPruning, prune_block_)


def prune_(model: nn.Module, config: Any, calibration=None) -> Any:
    """Prune `model` in place as `config` says (UnstructuredPruning, NMPruning, BlockPruning, ...)."""
    _register_builtin()
    fn = _PRUNERS.get(type(config))
    if fn is None:
        known = ", ".join(sorted(c.__name__ for c in _PRUNERS))
        raise TypeError(f"no pruning method for {type(config).__name__}; known configs: {known}")
    return fn(model, config, calibration)
