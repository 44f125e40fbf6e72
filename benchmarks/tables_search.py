"""BENCHMARKS.md section for the budget-driven search (issue 13). Called by make_tables.py;
reads only committed JSON in benchmarks/results/."""

from __future__ import annotations

from table_parts import load_result as _load
from table_parts import machine_line as _machine


def _recipe(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _budget_cell(p: dict) -> str:
    """'yes (3,120 s)': done within the CPU budget, and how much of it had been used then."""
    used = p.get("budget_used_s_at_completion")
    if used is None:
        return "-"
    return f"{'yes' if p.get('within_budget') else 'no'} ({used:,.0f} s)"


def _latency_cell(p: dict) -> str:
    return "-" if p.get("latency_ms") is None else f"{p['latency_ms']:.3f}"


def _trial_rows(rows: list[dict], base: dict) -> list[str]:
    out = ["| trial | valid nats/char | change | test nats/char | change | artifact bytes | x smaller than fp32 | "
           "meets caps (valid) | step ms | done within CPU budget (budget used then) | recipe parameters |",
           "|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|"]
    for p in sorted(rows, key=lambda p: p["bytes"]):
        valid = 100 * (p["valid_loss"] / base["loss"] - 1)
        out.append(f"| {p['trial']}{' (hand-seeded)' if p.get('hand_seeded') else ''} | {p['valid_loss']:.4f} | {valid:+.1f}% | {p['test_loss']:.4f} | "
                   f"{p['test_loss_change_pct']:+.1f}% | {p['bytes']:,} | "
                   f"{p['fp32_ratio']:.1f}x | {'yes' if p['feasible'] else 'no'} | {_latency_cell(p)} | "
                   f"{_budget_cell(p)} | {_recipe(p['params'])} |")
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def _all_trial_rows(rows: list[dict]) -> list[str]:
    """Every trial of the study (results JSONs written since issue 23 keep them all)."""
    out = ["| trial | state | rung | valid change | test change | bytes | predicted bytes | wall s | "
           "within CPU budget | parameters |", "|---:|---|---|---:|---:|---:|---:|---:|---|---|"]
    for p in rows:
        num = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        out.append(f"| {p['trial']}{' (hand-seeded)' if p.get('hand_seeded') else ''} | {p['state']} | "
                   f"{p.get('fidelity') or '-'} | {_pct(p.get('valid_change_pct'))} | {_pct(p.get('test_change_pct'))} | "
                   f"{num(p.get('bytes'))} | {num(p.get('predicted_bytes'))} | "
                   f"{'-' if p.get('wall_s') is None else format(p['wall_s'], ',.1f')} | "
                   f"{ {True: 'yes', False: 'no'}.get(p.get('within_budget'), '-') } | {_recipe(p['params'])} |")
    return out


def _what_it_shows(data: dict) -> list[str]:
    """The search's verdict on its ranking split, the hand-seeded trials, the budget used and the
    test figures, each said separately (issue 23, section 1)."""
    best, caps = data["best"], data["caps"]
    full = {p["trial"]: p for p in data.get("full_fidelity_trials") or []}
    seeded = (data.get("warm_start") or {}).get("trials") or []
    verdict, used, test = data.get("verdict_on_validation") or {}, data.get("budget_used") or {}, data.get("goal_on_test")
    ok = verdict.get("feasible_trials") or []
    out = ["What the data shows:", "",
           f"- **The search's own verdict** (it ranks and caps on the validation split): "
           + (f"trial(s) {', '.join(map(str, ok))} meet the budget; it chose trial {best['trial']}." if ok else
              f"**no trial meets the budget** (\"{best['why']}\"). Its pick, trial {best['trial']}, is "
              f"{best['fp32_ratio']:.1f}x smaller at {_pct(best.get('loss_change_pct'))} validation loss, over "
              f"the cap of {caps['loss']:.4f} (+2 %).")]
    if seeded:
        out.append(f"- **Hand-seeded**: trial(s) {', '.join(map(str, seeded))} are hand-written warm-start points "
                   "(`WARM_START` in benchmarks/search_bench.py, enqueued before the sampler started), not found "
                   "by the search. `benchmarks/recipes/search-units384-int3-fold.yaml` and the built-in "
                   "`search-int3` recipe are trial 0.")
    if used:
        over = used["over_budget_s"]
        out.append(f"- **Budget used**: {used['trial_wall_s']:,.0f} s of summed trial wall time against the "
                   f"{used['budget_s']:,.0f} s budget" + (f", {over:,.0f} s over it (a trial running when the budget "
                                                         "ran out finished and counts)." if over > 0 else "."))
    if test:
        met = test["met_by"]
        changes = [full[n]["valid_loss_change_pct"] for n in met if n in full and "valid_loss_change_pct" in full[n]]
        sampler = [f"{n} ({full[n]['fp32_ratio']:.1f}x, {_pct(full[n]['test_loss_change_pct'])})"
                   for n in test["found_by_sampler"] if n in full]
        out.append(f"- **On the test split** (reported, never selected on): {len(met)} trial(s) are <= 1/20 of "
                   f"the fp32 bytes within +2 % test loss: "
                   + (f"{', '.join(map(str, test['hand_seeded']))} hand-seeded" if test["hand_seeded"] else "none seeded")
                   + (f"; {', '.join(sampler)} found by the sampler" if sampler else "; none found by the sampler")
                   + (f". On validation the same trials are {min(changes):+.1f} % to {max(changes):+.1f} %."
                      if changes else "."))
    if data.get("per_trial_results"):
        out.append(f"- **Per-trial table**: {data['per_trial_results']}.")
    return out + [""]


def _previous_line(prev: dict | None, base_ms: float | None) -> list[str]:
    """One paragraph on the earlier study this one replaced (its JSON is folded into this one)."""
    if not prev or not prev.get("best"):
        return []
    best, comp = prev["best"], prev.get("compute") or {}
    return [f"An earlier study ({prev.get('study')}: low-rank + mixed precision + 200-400 fine-tune steps, "
            f"{comp.get('wall_s', 0):,.0f} s of trial wall time, 1 worker) found nothing within the caps: its best at "
            f"{best['fp32_ratio']:.1f}x smaller was {best['test_loss_change_pct']:+.1f}% test loss, and it timed the "
            f"uncompressed model at {(prev.get('baseline') or {}).get('latency_ms') or 37:.0f} ms/step because that "
            "baseline was measured while other jobs loaded the machine (load average 7-11); this study measured it "
            f"at {base_ms:.1f} ms/step on quiet cores, before any worker started. This study replaced the space.", ""]


def search_section(model: str = "charlstm-512x2") -> list[str]:
    data = _load(f"search_{model}.json")
    if not data:
        return []
    base, comp, best = data["baseline"], data["compute"], data["best"]
    workers = max((s.get("workers", 1) for s in comp["sessions"]), default=1)
    full = data.get("full_fidelity_trials") or data["pareto_front"]
    front = {p["trial"] for p in data["pareto_front"]}
    def command(s: dict) -> str:  # sessions before `command` was recorded: rebuilt from their settings
        return s.get("command") or (f"python benchmarks/search_bench.py --minutes {s['limit_s_per_worker'] / 60:g} "
                                    f"--workers {s.get('workers', 1)}")

    runs = "; ".join(f"`{command(s)}` (finished {s['finished']})" for s in comp["sessions"] if "limit_s_per_worker" in s)
    out = [f"### {model}: the earlier study (v2, issue 13; two hand-written warm-start points)", "",
           f"Machine and command: {_machine(data['provenance'])}." + (f" Trials ran in: {runs}." if runs else ""), "",
           f"Goal: {data['goal']}; budget `{data['budget']}` (caps: validation loss <= {data['caps']['loss']:.4f}, "
           f"artifact <= {data['caps']['bytes']:,.0f} bytes). Compute: {comp['wall_s']:,.0f} s of trial wall time "
           f"({comp['wall_s_means']}; {workers} worker(s) of {comp['threads']} thread each on a 2-core machine) in "
           f"{len(comp['sessions'])} session(s), {comp['device']}, against the {comp['budget_s']:,.0f} s budget. Trials: "
           + ", ".join(f"{n} {s.lower()}" for s, n in data["states"].items()) + " (complete by fidelity: "
           + ", ".join(f"{k} {v}" for k, v in data["complete_by_fidelity"].items()) + "). Uncompressed: test "
           f"{base['test_loss']:.4f} (valid {base['loss']:.4f}), {base['bytes']:,} bytes, {base['latency_ms']:.3f} ms/step "
           "(measured before the workers started). The search's caps and ranking use the validation split; the "
           "goal is checked on the test split, which is reported and never selected on.", ""]
    space = (data.get("settings") or {}).get("space") or {}
    if space.get("fold_input"):
        out += ["Space: per-layer widths (structured pruning, least-squares re-fit, multiples of 16, >= 1/2 of the "
                "units) -> fine-tune of 1000 or 2000 steps (lr 1e-3, batch 32 x 64, no distillation) -> layer 0's "
                "input weights folded into the embedding (exact) -> int3 or int4 weights, groups of 64, MSE clip, "
                "embedding and decoder int8. The study starts from two hand-written warm-start points shaped after the deploy "
                "recipes of issue 8 (units cut, 2000-step fine-tune; within 2 % at int8 but 4x too big) and sized "
                "to the byte cap: 384 units + int3 (trial 0) and 336 units + int4 (trial 1); every later trial is "
                "the sampler's (TPE; random until 10 trials had completed). Step latency: rnnslim's torch "
                "model, batch 1, 1 thread, measured while the other worker trained on the second core.", ""]
    out += _what_it_shows(data)
    out += _previous_line(data.get("previous"), base.get("latency_ms"))
    out += ["Every full-fidelity trial (on the Pareto front of validation loss, bytes and latency: "
            + (", ".join(str(t) for t in sorted(front)) or "none") + "):", ""]
    out += _trial_rows(full, base)
    if data.get("trials"):
        out += ["", "Every trial of the study (bytes predicted from the sampled shapes and bit widths before "
                    "any training; valid change of a lower-rung trial is on the evaluation subset):", ""]
        out += _all_trial_rows(data["trials"])
    met, late = data.get("goal_met_by") or [], data.get("goal_met_after_budget_by") or []
    full_by = {p["trial"]: p for p in full}
    verdict = (f"met by trial(s) {', '.join(map(str, met))} within the budget" if met else
               f"met only after the budget was spent (trial(s) {', '.join(map(str, late))})" if late else "**missed**")
    out += ["", f"The search's own choice, by its caps on the validation split: trial {best['trial']} ({best['why']}): "
            f"test {best['test_loss']:.4f} ({best['test_loss_change_pct']:+.1f}%), {best['bytes']:,} bytes "
            f"({best['fp32_ratio']:.1f}x smaller). The goal read on the test split (<= 1/20 of fp32 bytes at <= +2 % "
            f"test loss): {verdict}" + (f", {len(seeded)} of them hand-seeded" if (seeded := [n for n in met if (full_by.get(n) or {}).get("hand_seeded")]) else "")
            + "."
            + (" On this model the validation split charges compression more than the test split does (see the two "
               "change columns), so a trial can meet the test goal while missing the validation cap."
               if met and not best.get("feasible") else ""), ""]
    return out
