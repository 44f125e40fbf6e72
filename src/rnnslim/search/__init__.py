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

`rnnslim.search` is the function rnnslim.search.run.search (rnnslim/__init__.py binds the
name to it); the names below come from this package: `from rnnslim.search import SearchConfig`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "search": "rnnslim.search.run",
    "run_worker": "rnnslim.search.run",
    "SearchConfig": "rnnslim.search.config",
    "SearchSpace": "rnnslim.search.space",
    "FinetuneSpace": "rnnslim.search.space",
    "Dimension": "rnnslim.search.space",
    "register_dimension": "rnnslim.search.space",
    "stages_from_params": "rnnslim.search.space",
    "Budget": "rnnslim.search.budget",
    "BudgetError": "rnnslim.search.budget",
    "load_reference": "rnnslim.search.references",
    "ReferencePoint": "rnnslim.search.references",
    "reference_from_report": "rnnslim.search.references",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rnnslim.search' has no attribute {name!r}")

