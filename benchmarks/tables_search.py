"""BENCHMARKS.md section for the budget-driven search (issue 13). Called by make_tables.py;
reads only committed JSON in benchmarks/results/."""

from __future__ import annotations

from table_parts import load_result as _load
from table_parts import machine_line as _machine


def _recipe(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def search_section(model: str = "charlstm-512x2") -> list[str]:
    data = _load(f"search_{model}.json")
    if not data:
        return []
    base, comp, best = data["baseline"], data["compute"], data["best"]
    out = [f"### {model}: recipe search under a budget (`rnnslim search`)", "",
           f"Machine and command: {_machine(data['provenance'])}.", "",
           f"Goal: {data['goal']}; budget `{data['budget']}` (caps: validation loss <= {data['caps']['loss']:.4f}, "
           f"artifact <= {data['caps']['bytes']:,.0f} bytes). Compute used: {comp['wall_s']:,.0f} s of trial wall time "
           f"({comp['wall_s_means']}) in {len(comp['sessions'])} session(s), {comp['threads']} thread, "
           f"{comp['device']}, of the {comp['budget_s']:,.0f} s budget; {comp['note']}. Trials: "
           + ", ".join(f"{n} {s.lower()}" for s, n in data["states"].items()) + " (complete by fidelity: "
           + ", ".join(f"{k} {v}" for k, v in data["complete_by_fidelity"].items()) + "). Test loss is reported, "
           f"never selected on. Uncompressed: test {base['test_loss']:.4f}, {base['bytes']:,} bytes.", "",
           "Pareto front (validation loss, bytes, latency) of the full-fidelity trials. "
           "Step latency is one of the search's objectives but is not shown: in this run the uncompressed model "
           "itself timed at 37 ms/step against 9-17 ms measured afterwards, so these latencies are not trustworthy "
           "(cause not found yet).", "",
           "| trial | test nats/char | change | artifact bytes | x smaller than fp32 | within budget | recipe parameters |",
           "|---:|---:|---:|---:|---:|---|---|"]
    for p in sorted(data["pareto_front"], key=lambda p: p["bytes"]):
        out.append(f"| {p['trial']} | {p['test_loss']:.4f} | {p['test_loss_change_pct']:+.1f}% | {p['bytes']:,} | "
                   f"{p['fp32_ratio']:.1f}x | {'yes' if p['feasible'] else 'no'} | "
                   f"{_recipe(p['params'])} |")
    met = data.get("goal_met_by") or []
    out += ["", f"Chosen: trial {best['trial']} ({best['why']}): test {best['test_loss']:.4f} "
            f"({best['test_loss_change_pct']:+.1f}%), {best['bytes']:,} bytes ({best['fp32_ratio']:.1f}x smaller). "
            f"Goal (<= 1/20 of fp32 bytes at <= +2 % test loss): {'met by trials ' + str(met) if met else '**missed**'} "
            "with this budget; the search resumes from its journal to spend the rest.", ""]
    return out
