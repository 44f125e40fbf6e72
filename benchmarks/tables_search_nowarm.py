"""BENCHMARKS.md sections for the no-warm-start searches, v4 and v3 (issue 23): no warm start, a 2-hour CPU budget per model,
the search's own verdict on its ranking split with the test change beside it, the 1/40 size goal
reproduced by `rnnslim compress`, and the Pareto plot with the hand-written recipes. Called by
make_tables.py; reads only committed JSON (search_<model>-<version>.json, search_reproduce_<model>.json)."""

from __future__ import annotations

from common import RESULTS, ROOT
from table_parts import load_result as _load
from table_parts import machine_line as _machine
from tables_search import _all_trial_rows, _trial_rows

MODELS = ("charlstm-512x2", "chargru-512x2")


def _pct(v) -> str:
    return "-" if v is None else f"{v:+.2f}%"


def _verdict(data: dict) -> list[str]:
    """The search's verdict (ranking split) and the two goals, each with its test change beside it."""
    base, best, caps = data["baseline"], data.get("best") or {}, data["caps"]
    full = data.get("full_fidelity_trials") or []
    feasible = [t for t in full if t["feasible"] and t["within_budget"]]
    twentieth = [t for t in feasible if t["bytes"] <= base["bytes"] / 20]
    out = [f"- **The search's own verdict** (caps on the validation split: loss <= {caps['loss']:.4f}, "
           f"<= {caps['bytes']:,.0f} bytes): "
           + (f"{len(feasible)} full-fidelity trial(s) within the caps and the budget; its pick (`prefer bytes`: the "
              f"smallest) is trial {best['trial']}, {best['fp32_ratio']:.1f}x smaller than fp32 at "
              f"{_pct(best.get('loss_change_pct'))} validation and {_pct(best.get('test_loss_change_pct'))} test loss."
              if feasible else f"**no trial within the caps** (\"{best.get('why', 'no full-fidelity trial')}\")."
              + (f" Its pick, trial {best['trial']}, is {best['fp32_ratio']:.1f}x smaller at "
                 f"{_pct(best.get('loss_change_pct'))} validation / {_pct(best.get('test_loss_change_pct'))} test"
                 + (" (it finished after the CPU budget was spent, so it counts for no goal)."
                    if best.get("within_budget") is False else ".")
                 if best.get("trial") is not None else ""))]
    out.append("- **Goal 1, <= 1/20 within +2 % on the ranking split**: "
               + ("met by trial(s) " + ", ".join(f"{t['trial']} ({t['fp32_ratio']:.1f}x, valid "
                                                 f"{_pct(t['valid_loss_change_pct'])}, test {_pct(t['test_loss_change_pct'])})"
                                                 for t in sorted(twentieth, key=lambda t: t["bytes"]))
                  if twentieth else "**missed**") + ".")
    forty = [t for t in full if t["meets_1_40_on_test"] and t["within_budget"]]
    line = ("- **Goal 2, <= 1/40 within +2 % test loss**: "
            + ("met by trial(s) " + ", ".join(f"{t['trial']} ({t['fp32_ratio']:.1f}x, test {_pct(t['test_loss_change_pct'])}, "
                                             f"valid {_pct(t['valid_loss_change_pct'])})" for t in forty)
               if forty else "**missed**: no full-fidelity trial within the budget is that small at that loss"))
    smallest = min((t for t in full if t["test_loss_change_pct"] is not None and t["test_loss_change_pct"] <= 2.0),
                   key=lambda t: t["bytes"], default=None)
    if not forty and smallest:
        line += (f" (the smallest trial within +2 % test is trial {smallest['trial']}, {smallest['fp32_ratio']:.1f}x "
                 f"smaller, {_pct(smallest['test_loss_change_pct'])})")
    out.append(line + ".")
    return out


def _split_agreement(data: dict) -> list[str]:
    """Does the ranking split order the trials as the test split does (issue 23, section 2)? Spearman
    over the full-fidelity trials, and how much larger the validation change is."""
    from search_rank_split import spearman

    full = [t for t in data.get("full_fidelity_trials") or [] if t.get("test_loss_change_pct") is not None]
    rho = spearman([t["valid_loss_change_pct"] for t in full], [t["test_loss_change_pct"] for t in full])
    if rho is None:
        return []
    gaps = sorted(t["valid_loss_change_pct"] - t["test_loss_change_pct"] for t in full)
    return [f"- **Ranking split vs test**: over the {len(full)} full-fidelity trials the Spearman rank correlation "
            f"of the validation and test changes is {rho:.3f}; the validation change is larger by "
            f"{gaps[0]:.1f} to {gaps[-1]:.1f} points, growing with the change (a likely reason: the reference "
            "model was kept at its best validation checkpoint, so any change moves it off a point chosen for its "
            "low validation loss). Validation orders the recipes as test does; its cap is the stricter one."]


def _reproduced(model: str, study: str) -> list[str]:
    data = _load(f"search_reproduce_{model}.json")
    if not data:
        return []
    out = []
    for e in (e for e in data["reruns"] if e.get("study") == study):
        s, r = e["search"], e["rerun"]
        out.append(f"- **Reproduced with `rnnslim compress`** (`{e['command']}`, {e['wall_s']:,.0f} s, a fresh process; "
                   f"recipe `{e['recipe']}`): trial {e['trial']}{' (the search best)' if e['is_search_best'] else ''} "
                   f"gives {r['bytes']:,} bytes ({'the same' if e['same_bytes'] else 'NOT the same'} as the trial's "
                   f"{s['bytes']:,}; {r['fp32_ratio']:.1f}x smaller), valid {r['valid_loss']:.4f} (trial "
                   f"{s['valid_loss']:.4f}), test {r['test_loss']:.4f} (trial {s['test_loss']:.4f}, "
                   f"{_pct(r['test_loss_change_pct'])} vs fp32)"
                   + ("; within 1/40 and +2 % test." if e["meets_1_40_within_2pct_test"] else "."))
    return out


def _references(data: dict) -> list[str]:
    refs = data.get("references") or []
    if not refs:
        return []
    out = ["Hand-written recipes on the same axes (squares in the plot; `benchmarks/search_references.py`: "
           "measured the same way, never part of the search):", "",
           "| recipe | valid change | test change | artifact bytes | x smaller than fp32 | source |",
           "|---|---:|---:|---:|---:|---|"]
    for r in sorted(refs, key=lambda r: r["bytes"]):
        out.append(f"| {r['label']} | {_pct(r['valid_change_pct'])} | {_pct(r['test_change_pct'])} | {r['bytes']:,} | "
                   f"{r['fp32_ratio']:.1f}x | {r['source'].replace(str(ROOT) + '/', '')} |")
    return out + [""]


SPACES = {
    "v3": "Space (`space_v3` in benchmarks/search_bench.py, docs/search.md): per-layer widths down to 1/4, "
          "LSTMP (LSTM only), OBS sparsity unstructured or in strips (0.5-0.9), fine-tune of 0 / 500 / 1000 / "
          "2000 steps through proxy rungs of 100 and 300 steps, the exact input fold, RTN or GPTQ int2 / int3 / "
          "int4 with the embedding and decoder at 4 or 8 bits, codes plain or LZMA-coded; the fine-tune runs "
          "BEFORE the quantize stage.",
    "v4": "Space (`space_v4`): v3's, with the fine-tune of a dense trial run as quantization-aware training of "
          "the recurrent weights on the PTQ stage's frozen grid (the `qat` stage, last), trained by distillation "
          "from the fp32 model with dropout off (lr 1e-3, 0 / 250 / 500 / 1000 steps), because in v3 the "
          "fine-tune ran before quantizing and could not recover the rounding. A trial with a sparsity stage "
          "still fine-tunes (same training) before quantizing.",
    "v5": "Space (`space_v5`): v4's, with fine-tunes (and QAT) of 0 / 500 / 1000 / 2000 steps, because a sparse "
          "trial's loss is the pruning's and longer recovery was what reduced it (docs/search.md).",
    "v6": "Space (`space_v6`): v5's; promotion between rungs compares a trial only with trials of its recovery "
          "family (sparse or dense, fine-tune or QAT), because in v5 the sparse fine-tuned trials were compared "
          "at their one-shot rung with dense trials' GPTQ losses and none reached its full fine-tune.",
    "v7": "Space (`space_v7`): v4's (fine-tunes and QAT of 0 / 250 / 500 / 1000 steps; v5's 2,000-step "
          "fine-tunes took ~30 min each) less OBS strips (a latency pattern; this budget caps bytes and loss "
          "only); promotion by recovery family, as v6.",
    "v8": "Space (`space_v8`): v7's, with prune_units' 2026-12 defaults: a unit scored by its group's L2 norm "
          "(reduce l2) and no least-squares re-fit before the trial's fine-tune or QAT (refit auto).",
}


FINETUNE_FIRST = ("v3",)  # the spaces whose dense trials fine-tune before quantizing; the later ones run QAT


def _families(data: dict) -> list[str]:
    """Which families the full-fidelity trials used: sparse (fine-tune before quantizing) vs dense with
    QAT steps, read from the sampled parameters."""
    full = data.get("full_fidelity_trials") or []
    version = data.get("study", "")[-2:]
    qat_space = version in SPACES and version not in FINETUNE_FIRST  # a dense trial's steps run as QAT
    sparse = [t["trial"] for t in full if t["params"].get("sparsity_kind", "none") != "none"]
    qat = [t["trial"] for t in full if t["trial"] not in sparse and t["params"].get("finetune_steps")
           and t["params"].get("qat", qat_space)]
    if not full:
        return []
    dense = [t for t in data.get("trials") or [] if t["params"].get("sparsity_kind", "none") == "none"]
    listed = ", ".join(f"#{t['trial']} {t['state'].lower()}" for t in dense)
    return [f"Families sampled: {len(sparse)} of the {len(full)} full-fidelity trials are sparse (OBS; "
            "fine-tune, then quantize)"
            + ("" if not qat else f"; trial(s) {', '.join(map(str, qat))} ran QAT")
            + (f"; **none ran QAT**: of all {len(data.get('trials') or [])} trials only {len(dense)} sampled no "
               f"sparsity ({listed or 'none'}), so this "
               "study does not test QAT." if not qat and qat_space else "."), ""]


def search_nowarm_section(model: str, version: str) -> list[str]:
    data = _load(f"search_{model}-{version}.json")
    if not data:
        return []
    base, comp = data["baseline"], data["compute"]
    runs = "; ".join(f"`{s['command']}` (finished {s['finished']}, load average after {s.get('load_average_after')})"
                     for s in comp["sessions"])
    out = [f"### {model}: the search with no warm start ({version}, issue 23)", "",
           f"Machine: {_machine(data['provenance'])}. Sessions: {runs}.", "",
           f"Budget `{data['budget']}`, `prefer bytes` (the smallest recipe within the caps). Compute: "
           f"{comp['wall_s']:,.0f} s of summed trial wall time against the {comp['budget_s']:,.0f} s budget "
           f"(2 workers x 1 thread on the 2 cores, {comp['device']}; a trial running when the budget ran out "
           "finished and counts; trials finished after it are marked and never count for a goal). Trials: "
           + ", ".join(f"{n} {s.lower()}" for s, n in data["states"].items()) + " (complete by fidelity: "
           + ", ".join(f"{k} {v}" for k, v in data["complete_by_fidelity"].items()) + "). No hand-written "
           f"point was enqueued. Input model: valid {base['loss']:.4f}, test {base['test_loss']:.4f}, "
           f"{base['bytes']:,} bytes; 1/20 = {base['bytes'] / 20:,.0f} bytes, 1/40 = {base['bytes'] / 40:,.0f}.",
           "", SPACES[version] + " Trials over the byte cap, or under 0.4 x it (the size floor), are pruned from "
           "their predicted size before any training.", ""]
    out += _families(data) + _verdict(data) + _split_agreement(data) + _reproduced(model, data["study"]) + [""]
    if (RESULTS / f"search_pareto_{model}-{version}.png").exists():
        out += [f"![{model} search {version}: loss change vs bytes](benchmarks/results/search_pareto_{model}-{version}.png)", "",
                "Left: validation (the split the search ranks and caps on); right: test (reported only). Filled "
                "dots: full-fidelity trials within the budget; the line: their Pareto front; red ring: the "
                "search's pick; squares: hand-written recipes; dashed / dotted verticals: 1/20 and 1/40 of the "
                "fp32 bytes; green: +2 %. The study's own page is benchmarks/runs/search_<model>-<version>/report.html "
                "(not committed; `rnnslim search` writes one into every search directory).", ""]
    out += _references(data)
    full = data.get("full_fidelity_trials") or []
    out += ["Every full-fidelity trial:", ""] + _trial_rows(full, base)
    if data.get("trials"):
        out += ["", "<details><summary>Every trial of the study (bytes predicted before any training; a lower-rung "
                    "trial's valid change is on the evaluation subset)</summary>", ""]
        out += _all_trial_rows(data["trials"]) + ["", "</details>"]
    return out + [""]


def search_nowarm_sections() -> list[str]:
    out = []
    for m in MODELS:
        for version in reversed(SPACES):  # the newest study first
            out += search_nowarm_section(m, version)
    return out

