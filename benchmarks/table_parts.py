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


NOISE_BAND = ("the band is how far the change between two comparable models (fp32 vs weight-only int4 g64) "
              "disagrees between disjoint halves of this test split, the larger of two halvings "
              "(../shared/docs/BENCHMARKING.md's definition; benchmarks/noise_band.py)")


def noise_band(model: str) -> float | None:
    """The test-loss noise band of `model`'s split (NOISE_BAND), None when not measured."""
    noise = (load_result("noise_band.json") or {}).get(model) or {}
    return noise.get("noise_band")


def noise_sentence(model: str, marked: bool = True) -> str:
    """The one sentence every table with loss changes uses for its noise band (`marked`: the table marks ~)."""
    band = noise_band(model)
    if band is None:
        return "The noise band of this split was not measured (benchmarks/noise_band.py): no change is marked equal."
    what = "are marked ~ (equal: not a gain, not a loss)" if marked else "are equal, not gains or losses"
    return f"Changes inside the noise band, +-{band:.4f} nats, {what}; {NOISE_BAND}."


def change_cell(change: float, ref: float, band: float | None) -> str:
    """'+0.0123 (+0.81%)', marked '~ ' when inside the noise band (not a gain, not a loss)."""
    mark = "~ " if band is not None and abs(change) < band else ""
    return f"{mark}{change:+.4f} ({100 * change / ref:+.2f}%)"


# --- "best torch": one meaning in every table ------------------------------------------------
BEST_TORCH_KINDS = ("torch_default", "torch_no_onednn")  # rnnslim measure's variant kinds
BEST_TORCH_VARIANTS = ("torch nn (default)", "torch nn (oneDNN off)")  # deploy_bench's row names
BEST_TORCH = ("best torch = the faster of torch's own nn.LSTM/nn.GRU with default settings and with oneDNN off "
              "(the same fp32 model, measured in the same run at the same threads); `vs best torch` is its "
              "step time over the row's, a speed-up (> 1 = faster). torch.ao's deprecated dynamic int8 is a row "
              "of its own, never best torch.")


def best_torch(base: dict) -> tuple[str | None, float | None]:
    """(kind, median ms) of best torch among rnnslim-measure variants keyed by kind (BEST_TORCH)."""
    cands = [(k, base[k]["latency"]["median_ms"]) for k in BEST_TORCH_KINDS if base.get(k) and base[k].get("latency")]
    return min(cands, key=lambda c: c[1]) if cands else (None, None)


def speedup(ref_ms: float | None, ms: float | None) -> str:
    """'4.35x': the reference's step time over the row's (> 1 = the row is faster); '-' without both."""
    return f"{ref_ms / ms:.2f}x" if ref_ms and ms else "-"


# --- the time to stream the weights once: a reference, not a bound ---------------------------
STREAM_REF = ("`x stream`: the row's step time over the time to read its weight bytes once at the copy bandwidth "
              "measured in the same run. A reference, not a lower bound: weights that stay in the caches, and "
              "kernels that read fewer bytes than counted, run below it (x < 1).")
