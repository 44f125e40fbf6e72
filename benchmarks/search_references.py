"""The hand-written recipes drawn beside a search's trials (issue 23, section 3): each a
rnnslim.search.references.ReferencePoint (validation and test loss, artifact bytes on disk),
measured the same way as the trials. Read from:

- a recipe run of benchmarks/run_recipes.py still on disk: benchmarks/runs/<model>/<recipe>/report.json
  (the deploy recipes; the directory is not committed, so the point is carried in the search's
  committed results JSON once read);
- the pipeline reports kept inside committed results JSONs (prune_*, small_*, recover_*);
- charlstm-512x2 only: the two hand-written warm-start points of the v2 search (search-units384-
  int3-fold is the first), from its committed JSON.
A point recorded in the previous results JSON and no longer on disk is kept from there.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS, RUNS

from rnnslim.search.references import ReferencePoint, load_reference, reference_from_report

RUN_DIRS = ("deploy-units384-int8", "deploy-units320-int8")  # benchmarks/recipes, run by run_recipes.py
# (results JSON, recipe) pairs whose pipeline report is kept in the JSON: one per family
KEPT = {"charlstm-512x2": [("prune_charlstm-512x2.json", "prune-nm24"),
                           ("prune_charlstm-512x2.json", "prune-unstructured90-ft"),
                           ("small_1p1m_charlstm-512x2.json", "small-lowrank-1p1m"),
                           ("small_1p1m_charlstm-512x2.json", "small-lstmp-1p1m")],
        "chargru-512x2": [("prune_chargru-512x2.json", "prune-gru-half-units")]}
V2_SEEDED = {"charlstm-512x2": ("search_charlstm-512x2.json", ["search-units384-int3-fold (v2 warm start)",
                                                               "units336-int4-fold (v2 warm start)"])}


def _kept_report(path: Path, recipe: str) -> dict | None:
    """The pipeline report of `recipe` inside a committed results JSON (rows[*].pipeline_report)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for row in data.get("rows", []):
        rep = row.get("pipeline_report") if isinstance(row, dict) else None
        if isinstance(rep, dict) and (rep.get("recipe") or {}).get("name") == recipe:
            return rep
    return None


def hand_references(model: str, previous: list[dict] | None = None) -> list[ReferencePoint]:
    """Every hand-written recipe measured on `model` that can be found (see the module docstring)."""
    points: dict[str, ReferencePoint] = {}
    fields = set(ReferencePoint.model_fields)
    for p in previous or []:  # as the results JSON stored it (with its change columns)
        points[p["label"]] = ReferencePoint.model_validate({k: v for k, v in p.items() if k in fields})
    for name in RUN_DIRS:
        run = RUNS / model / name
        if (run / "report.json").is_file():
            points[name] = load_reference(run).model_copy(  # a path that means the same on every machine
                update={"source": f"benchmarks/runs/{model}/{name}/report.json (a run, not committed)"})
    for file, recipe in KEPT.get(model, []):
        rep = _kept_report(RESULTS / file, recipe)
        if rep is not None:
            points[recipe] = reference_from_report(rep, f"benchmarks/results/{file} ({recipe})")
    if model in V2_SEEDED:
        file, labels = V2_SEEDED[model]
        try:
            v2 = json.loads((RESULTS / file).read_text())
        except (OSError, ValueError):
            v2 = {}
        seeded = [r for r in v2.get("full_fidelity_trials", []) if r.get("hand_seeded")]
        for label, r in zip(labels, sorted(seeded, key=lambda r: r["trial"])):
            points[label] = ReferencePoint(label=label, loss=r["valid_loss"], test_loss=r["test_loss"],
                                           bytes=r["bytes"], metric="loss_nats",
                                           source=f"benchmarks/results/{file} trial {r['trial']}")
    return sorted(points.values(), key=lambda p: p.bytes)
