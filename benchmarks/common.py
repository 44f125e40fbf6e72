"""Shared helpers of the benchmark scripts: paths, provenance, JSON results."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
DATA = SHARED / "data" / "tinyshakespeare.txt"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"  # pipeline work directories (not committed)


def git_commit() -> str | None:
    from rnnslim.measure.machine import git_state

    return git_state()["commit"]


def provenance() -> dict:
    from rnnslim.measure import machine_info

    info = machine_info()
    info = info.model_dump(mode="json") if hasattr(info, "model_dump") else dict(info)
    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "git_commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": info}


def update_results(path: Path, key: str, value) -> dict:
    """Merge `value` under `key` into the JSON file at `path` (written atomically); a callable `value`
    is given the recorded value (None when there is none) and returns the new one, from one read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value(data.get(key)) if callable(value) else value
    data["provenance"] = provenance()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
    return data


# finetune settings of the distillation runs: the fp32 input model is the only teacher, dropout off
DISTILL_SETTINGS = {"distill_alpha": 1.0, "distill_temperature": 1.0, "dropout": 0.0}


def prune_units_recipe(name: str, ratio: float, reduce: str, refit: str | None = None,
                       finetune_steps: int = 0, distill: bool = False) -> str:
    """YAML of the benchmarks' structured cut: prune_units (magnitude, round_to 16, `reduce`, `refit` when
    given, else the stage's default), then, with finetune_steps > 0, a finetune at lr 1e-3 on the labels
    (the model's dropout) or, with `distill`, by distillation alone (DISTILL_SETTINGS)."""
    lines = ["version: 1", f"name: {name}", "seed: 0", "stages:", "  - kind: prune_units", f"    ratio: {ratio}",
             "    round_to: 16", "    criterion: magnitude", f"    reduce: {reduce}"]
    if refit is not None:
        lines.append(f"    refit: {refit}")
    if finetune_steps:
        lines += ["  - kind: finetune", f"    max_steps: {finetune_steps}", "    lr: 0.001"]
        if distill:
            lines += [f"    {key}: {value}" for key, value in DISTILL_SETTINGS.items()]
    return "\n".join(lines) + "\n"
