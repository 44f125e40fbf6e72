"""Small formatting helpers shared by the BENCHMARKS.md generators (make_tables.py, tables_deploy.py)."""

from __future__ import annotations

import json

from common import RESULTS


def load_result(name: str) -> dict | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def machine_line(prov: dict) -> str:
    m = prov.get("machine", {})
    return (f"{m.get('cpu_model', '?')}, {m.get('logical_cpus', '?')} CPUs, torch {m.get('torch_version')}, "
            f"onnxruntime {m.get('onnxruntime_version')}, load average {m.get('load_average')}; {prov.get('date')}, "
            f"commit {str(prov.get('git_commit'))[:10]}; `{prov.get('command')}`")


def ms_cell(lat: dict | None, digits: int = 3) -> str:
    """'median [fastest-slowest]' of a latency record, '-' when absent."""
    if not lat:
        return "-"
    lo, hi = lat.get("spread_ms", [None, None])
    return f"{lat['median_ms']:.{digits}f}" + (f" [{lo:.{digits}f}-{hi:.{digits}f}]" if lo is not None else "")
