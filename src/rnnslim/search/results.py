"""What a search leaves behind: results.json, the Pareto front, best.yaml, pareto.png, report.html.

    OUT/results.json   every trial (params, rungs, values, constraints, run dir), the Pareto
                       front of the full-fidelity trials, the best trial and why, the baseline
    OUT/best.yaml      the best trial's recipe; `rnnslim compress MODEL --recipe OUT/best.yaml
                       --out DIR` re-runs it (whole-split evaluation, latency measured); when no
                       trial met the budget it holds the least-violating one and its header says
                       so (rnnslim.search.verdict; results.json "verdict")
    OUT/pareto.png     loss against artifact bytes (colour: latency), front and caps marked
                       (needs matplotlib: pip install 'rnnslim[plot]'; skipped without it)
    OUT/report.html    the verdict, the Pareto plot (inline SVG, no matplotlib needed) and the
                       front as a table; both plots draw the config's reference recipes
                       (`--reference RUN_DIR`) as labelled squares

All four are written atomically from the study as stored, so any worker (or `rnnslim search`
re-run with --n-trials 0) can write them, and the last writer's files describe the most trials.
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnslim.search.budget import OBJECTIVES, feasible
from rnnslim.search.fidelity import pareto_front
from rnnslim.search.verdict import budget_verdict

RESULTS_JSON = "results.json"
BEST_YAML = "best.yaml"
PARETO_PNG = "pareto.png"
REPORT_HTML = "report.html"


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        res = t.user_attrs.get("result") or {}
        rows.append({"number": t.number, "state": t.state.name, "params": t.params,
                     "values": list(t.values) if t.values else None, "fidelity": res.get("fidelity"),
                     "loss": res.get("loss"), "loss_subset": res.get("loss_subset"), "test_loss": res.get("test_loss"),
                     "bytes": res.get("bytes"), "latency_ms": res.get("latency_ms"),
                     "predicted_bytes": res.get("predicted_bytes", t.user_attrs.get("predicted_bytes")),
                     "predicted_bytes_upper": t.user_attrs.get("predicted_bytes_upper"),
                     "constraints": res.get("constraints"), "feasible": feasible(res.get("constraints")),
                     "recipe_hash": t.user_attrs.get("recipe_hash"), "run_dir": res.get("run_dir"),
                     "rungs": {k[5:]: v for k, v in t.user_attrs.items() if k.startswith("rung_")},
                     "promotion": {k[8:]: v for k, v in t.user_attrs.items() if k.startswith("promote_")},
                     "reused_from": t.user_attrs.get("reused_from"), "retry_of": t.system_attrs.get("retry_of"),
                     "error": t.user_attrs.get("error"), "wall_s": res.get("wall_s"),
                     "started": t.datetime_start.isoformat() if t.datetime_start else None,
                     "finished": t.datetime_complete.isoformat() if t.datetime_complete else None})
    return rows


def _full(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["state"] == "COMPLETE" and r["fidelity"] == "full" and r["reused_from"] is None]


def front_of(rows: list[dict], objectives: list[str], higher_is_better: bool) -> list[dict]:
    full = _full(rows)
    signs = tuple(-1 if (k == "loss" and higher_is_better) else 1 for k in objectives)
    return [full[i] for i in pareto_front(full, tuple(objectives), signs)]


def choose_best(rows: list[dict], prefer: str, higher_is_better: bool) -> tuple[dict | None, str]:
    """The feasible full-fidelity trial with the lowest `prefer` (ties: loss, then bytes); else
    the least infeasible one (smallest summed violation), said so."""
    full = _full(rows)
    if not full:
        return None, "no trial reached the full fine-tune yet"

    def key(r: dict, first: str):
        order = [first] + [k for k in OBJECTIVES if k != first]
        sign = lambda k: -1 if (k == "loss" and higher_is_better) else 1  # noqa: E731
        return tuple(sign(k) * r[k] if r.get(k) is not None else float("inf") for k in order)

    ok = [r for r in full if r["feasible"]]
    if ok:
        best = min(ok, key=lambda r: key(r, prefer))
        return best, f"lowest {prefer} of the {len(ok)} full-fidelity trials within the budget"
    best = min(full, key=lambda r: (sum(max(0.0, c) for c in r["constraints"] or [1.0]), key(r, prefer)))
    return best, f"NO trial meets the budget; the least violating of {len(full)} full-fidelity trials"


def write_outputs(study, ctx, extra: dict | None = None) -> dict:
    """results.json, best.yaml and pareto.png in the search directory; the results dict."""
    import yaml

    from rnnslim.utils.atomic import write_json_atomic, write_text_atomic

    out = ctx.cfg.out_dir
    rows = trial_rows(study)
    objectives = ctx.objectives()
    front = front_of(rows, objectives, ctx.higher_is_better)
    best, why = choose_best(rows, ctx.budget.preferred, ctx.higher_is_better)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    fidelities: dict[str, int] = {}
    for r in rows:
        if r["state"] == "COMPLETE":
            fidelities[r["fidelity"]] = fidelities.get(r["fidelity"], 0) + 1
    best_info = None
    recipe = None
    if best is not None:
        recipe = study.trials[best["number"]].user_attrs.get("recipe")
        base = ctx.baseline
        best_info = {"trial": best["number"], "why": why, "feasible": best["feasible"],
                     **{k: best[k] for k in ("loss", "test_loss", "bytes", "latency_ms", "params", "run_dir")},
                     "bytes_ratio": base["bytes"] / best["bytes"] if best["bytes"] else None,
                     "loss_change_pct": 100 * (best["loss"] / base["loss"] - 1),
                     "test_loss_change_pct": (100 * (best["test_loss"] / base["test_loss"] - 1)
                                              if best["test_loss"] is not None else None),
                     "recipe": str(out / BEST_YAML) if recipe is not None else None}
    results = {"study": ctx.cfg.study_name, "model": ctx.cfg.model, "task": ctx.task.name, "metric": ctx.metric,
               "higher_is_better": ctx.higher_is_better,
               "objectives": objectives, "directions": ctx.directions(), "budget": ctx.budget.text(),
               "caps": ctx.caps, "prefer": ctx.budget.preferred, "baseline": ctx.baseline,
               "trials_target": ctx.cfg.trials, "states": states, "complete_by_fidelity": fidelities,
               "pareto_front": [r["number"] for r in front], "best": best_info,
               "references": [r.model_dump(mode="json") for r in ctx.cfg.references],
               "config": ctx.cfg.model_dump(mode="json", exclude={"storage", "references"}), **(extra or {}),
               "trials": rows}
    results["verdict"] = budget_verdict(results)  # "NO trial met the budget ..." when none did
    if recipe is not None:
        header = "".join(f"# {line.strip()}\n" for line in results["verdict"].splitlines())
        header += (f"# trial {best['number']}: {why}; budget: {ctx.budget.text() or 'none'}\n"
                   f"# re-run: rnnslim compress {ctx.cfg.model} --recipe {out / BEST_YAML} --out DIR\n")
        write_text_atomic(out / BEST_YAML, header + yaml.safe_dump(recipe, sort_keys=False))
    write_json_atomic(out / RESULTS_JSON, results)
    from rnnslim.report.search_page import render_search_html

    write_text_atomic(out / REPORT_HTML, render_search_html(results))
    plot = plot_front(rows, front, ctx, out / PARETO_PNG)
    if plot:
        results["plot"] = str(plot)
    return results


def _fmt_bytes(v: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if v >= scale:
            return f"{v / scale:g} {unit}"
    return f"{v:g} B"


def plot_front(rows: list[dict], front: list[dict], ctx, path: Path) -> Path | None:
    """Loss against bytes of the complete trials (full fidelity filled, proxies hollow); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    done = [r for r in rows if r["state"] == "COMPLETE" and r["loss"] is not None and r["bytes"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    full = [r for r in done if r["fidelity"] == "full"]
    proxy = [r for r in done if r["fidelity"] != "full"]
    if proxy:
        ax.scatter([r["bytes"] for r in proxy], [r["loss"] for r in proxy], facecolors="none", edgecolors="0.6",
                   label="stopped at a proxy rung (subset loss)")
    if full:
        lat = [r["latency_ms"] if r["latency_ms"] is not None else 0.0 for r in full]
        sc = ax.scatter([r["bytes"] for r in full], [r["loss"] for r in full], c=lat, cmap="viridis",
                        label="full fine-tune")
        if ctx.cfg.latency:
            fig.colorbar(sc, ax=ax, label="step latency (ms)")
    if front:  # rings, not a line: the front is over loss, bytes and latency, drawn in two of them
        ax.scatter([r["bytes"] for r in front], [r["loss"] for r in front], s=140, facecolors="none",
                   edgecolors="r", label="Pareto front (" + ", ".join(ctx.objectives()) + ")")
    base = ctx.baseline
    ax.scatter([base["bytes"]], [base["loss"]], marker="*", s=150, c="k", label="input model")
    refs = ctx.cfg.references
    if refs:  # recipes run outside the search (hand-written ones), measured the same way
        ax.scatter([r.bytes for r in refs], [r.loss for r in refs], marker="s", s=60, c="C1",
                   label="reference recipes")
        for r in refs:
            ax.annotate(r.label, (r.bytes, r.loss), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if "bytes" in ctx.caps:
        ax.axvline(ctx.caps["bytes"], ls="--", c="C3", lw=1, label="bytes cap")
    if "loss" in ctx.caps:
        ax.axhline(ctx.caps["loss"], ls=":", c="C3", lw=1, label="loss cap")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    xs = [r["bytes"] for r in done] + [base["bytes"]] + [r.bytes for r in refs]
    if max(xs) / min(xs) > 8:  # a log axis only when the sizes span about a decade
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_bytes(v)))
    ax.set_xlabel("artifact bytes")
    ax.set_ylabel(f"valid {ctx.metric}")
    ax.set_title(f"rnnslim search {ctx.cfg.study_name}: {len(done)} trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110)
        os.replace(tmp, path)  # atomic: readers see the old plot or the new one
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
