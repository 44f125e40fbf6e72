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
    """Merge `value` under `key` into the JSON file at `path` (written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    data["provenance"] = provenance()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
    return data
