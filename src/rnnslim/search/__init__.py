"""Budget-driven search over compression recipes (Optuna; `pip install 'rnnslim[search]'`).

    import rnnslim
    res = rnnslim.search("charlstm-512x2.json", data="tinyshakespeare.txt",
                         budget="bytes=1/20,loss=+2%", trials=30, out="runs/search")
    res["best"]["recipe"]        # runs/search/best.yaml: `rnnslim compress MODEL --recipe` re-runs it
    res["pareto_front"]          # trial numbers of the full-fidelity Pareto front

    rnnslim search MODEL --data FILE --budget bytes=1/20,loss=+2% --trials 30 --out runs/search \
        [--storage URL] [--study-name NAME] [--workers N] [--n-trials K]

A trial is a recipe (space.py: per-layer widths, low rank when registered, sparsity, the
fine-tune budget, bits) run by the pipeline in its own run directory, scored on three
objectives (validation loss, artifact bytes, step latency) with cheap proxy rungs first
(fidelity.py), under a budget that constrains the sampler and defines the best trial
(budget.py). The study lives in a journal file (default) or a database, survives kill -9
and is shared by several workers (storage.py). This package sits above the pipeline: it
imports rnnslim.pipeline, nothing below imports it. Optuna is imported only when a search runs.

`rnnslim.search` is both this package and the function: the module is callable.
"""

from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "search": "rnnslim.search.run",
    "run_worker": "rnnslim.search.run",
    "SearchConfig": "rnnslim.search.config",
    "SearchSpace": "rnnslim.search.space",
    "FinetuneSpace": "rnnslim.search.space",
    "Dimension": "rnnslim.search.space",
    "register_dimension": "rnnslim.search.space",
    "Budget": "rnnslim.search.budget",
    "BudgetError": "rnnslim.search.budget",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnslim.search' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """`rnnslim.search(...)` calls rnnslim.search.run.search whether `rnnslim.search` names
    this package (once imported) or the lazily exported function."""

    def __call__(self, *args, **kwargs):
        from rnnslim.search.run import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
