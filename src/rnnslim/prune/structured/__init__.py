"""Structured pruning: physically remove hidden units, layers and vocabulary entries.

    cut.py      prune_units_ / keep_units_ (StructuredPruning): choose units, cut, check the model runs
    select.py   how many units each group keeps and which (scores, scopes, rounding)
    units.py    slicing every coupled tensor and rebuilding smaller modules
    layers.py   remove_layers_ (whole layers, optional least-squares re-fit)
    vocab.py    prune_vocab_ (tokens that never occur)
    history.py  replay / save_edited / load_edited (re-create an edited user model)
"""

from rnnslim.prune.structured.cut import (
    PruneScope,
    StructuredPruning,
    StructuredResult,
    UnitPruningFields,
    UnitReduce,
    append_history,
    check_runs,
    keep_units_,
    n_params,
    prune_units_,
    resolve_keys,
    stale_size_attributes,
    unit_groups,
)

__all__ = ["PruneScope", "StructuredPruning", "StructuredResult", "UnitPruningFields", "UnitReduce", "append_history",
           "check_runs", "keep_units_", "n_params", "prune_units_", "resolve_keys", "stale_size_attributes",
           "unit_groups"]
