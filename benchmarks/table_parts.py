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


def stage_chain(row: dict, runs: dict[str, dict] | None = None) -> str:
    """The stages of a recipe run with the training each did: 'prune (+1500 ft steps) -> finetune
    (3000 steps)'. A stage that fine-tunes inside itself (prune's finetune_steps, AGP) says so,
    from the pipeline's own record of that run. A run that continued another (`after`) records only
    its own stages; the earlier ones are described from `runs[after]` when given."""
    records = [(r.get("record") or {}) for r in (row.get("pipeline_report") or {}).get("rows", [])[1:]]
    own = row["stages"][len(row["stages"]) - len(records):]
    earlier = row["stages"][:len(row["stages"]) - len(records)]
    out = []
    if earlier:
        before = (runs or {}).get(row.get("after") or "")
        out.append(stage_chain(before, runs) if before else " -> ".join(earlier))
    for kind, rec in zip(own, records):
        inner = rec["finetune"].get("steps") if isinstance(rec.get("finetune"), dict) else None
        if kind == "finetune" and rec.get("steps"):
            out.append(f"finetune ({rec['steps']} steps)")
        elif inner:
            out.append(f"{kind} (+{inner} ft steps)")
        else:
            out.append(kind)
    return " -> ".join(out)


def noise_band(model: str) -> float | None:
    """2 s.e. of the paired test-loss difference of two models on this split (benchmarks/noise_band.py)."""
    noise = (load_result("noise_band.json") or {}).get(model)
    return noise["noise_band_2se"] if noise else None


def change_cell(change: float, ref: float, band: float | None) -> str:
    """'+0.0123 (+0.81%)', marked '~ ' when inside the noise band (not a gain, not a loss)."""
    mark = "~ " if band is not None and abs(change) < band else ""
    return f"{mark}{change:+.4f} ({100 * change / ref:+.2f}%)"
