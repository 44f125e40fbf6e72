"""report.md from the report data (the content of report.json), so either can be rebuilt."""

from __future__ import annotations

import json

import yaml


def _num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _int(v: int | None) -> str:
    return "n/a" if v is None else f"{v:,}"


def _delta(c: dict) -> str:
    if c.get("delta") is None:
        return "n/a"
    pct = "" if c.get("delta_pct") is None else f" ({c['delta_pct']:+.2f}%)"
    return f"{c['delta']:+.4f}{pct}"


def _ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.3f}x"


def _finetune_of(record: dict | None) -> dict | None:
    """The fine-tuning summary of a stage record (rnnslim.train.finetune), top level or under `finetune`."""
    record = record or {}
    for rec in (record, record.get("finetune")):
        if isinstance(rec, dict) and "kept_input" in rec:
            return rec
    return None


SELECTION_METRICS = {"exit_loss": "the exits' weighted validation loss (lower is better)"}


def finetune_line(record: dict | None, metric: str) -> str | None:
    """One sentence: what fine-tuning did to the validation metric, and whether the input was kept."""
    ft = _finetune_of(record)
    if ft is None:
        return None
    cap = ft.get("eval_max_steps")
    # the selection's loss is the results table's loss unless it was capped to a prefix of the split
    scope = (f"; these validation losses are on the first {cap:,} tokens (the selection's cap), the table above "
             "evaluates the whole split" if cap else "; whole validation split, the same loss as the table above")
    chosen_by = ft.get("metric") or metric  # what the selection ranked (early_exit: the exits' loss)
    if chosen_by != metric:
        scope = f"; selected by {SELECTION_METRICS.get(chosen_by, chosen_by)}, not by the table's {metric}"
    metric = chosen_by
    scope += f"; note: {ft['valid_note']}" if ft.get("valid_note") else ""
    head = f"- fine-tuning: {ft['steps']} steps in {ft.get('wall_s') or 0:.1f} s, {ft['evaluations']} evaluations; "
    if ft["kept_input"]:
        return head + (f"**no evaluation beat the input** (valid {metric} {_num(ft['input_valid'])}), "
                       "so the input weights were kept" + scope)
    return head + (f"valid {metric} {_num(ft['input_valid'])} before, best {_num(ft['best_valid'])} "
                   f"at step {ft['best_step']} (kept)" + scope)


def results_table(data: dict) -> str:
    metric = data["primary_metric"]
    rows = data["rows"]
    with_latency = any(r["measurements"].get("latency_ms") is not None for r in rows)
    head = ["stage", f"valid {metric}", "change", f"test {metric}", "change", "params", "non-zeros",
            "artifact bytes", "size vs input"]
    if with_latency:
        head += ["latency ms/step", "latency vs input"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m, c = r["measurements"], r["compare"]
        label = r["label"] + (" (reused)" if r.get("reused") and r["index"] > 0 else "")
        label += " (input kept)" if (_finetune_of(r.get("record")) or {}).get("kept_input") else ""
        dv, dt = ("—", "—") if r["index"] == 0 else (_delta(c["valid"]), _delta(c["test"]))
        cells = [label, _num(c["valid"]["value"]), dv, _num(c["test"]["value"]), dt,
                 _int(m.get("params")), _int(m.get("nonzeros")), _int(m.get("artifact_bytes")), _ratio(c["bytes_ratio"])]
        if with_latency:
            cells += [_num(m.get("latency_ms"), 3), _ratio(c["latency_ratio"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timings_table(data: dict) -> str:
    keys = ["run_s", "save_s", "load_s", "evaluate_s", "latency_s"]
    lines = ["| stage | " + " | ".join(keys) + " | total s |", "|" + "---|" * (len(keys) + 2)]
    for r in data["rows"]:
        t = r.get("timings") or {}
        total = sum(v for v in t.values() if isinstance(v, (int, float)))
        lines.append(f"| {r['label']} | " + " | ".join(_num(t.get(k), 2) for k in keys) + f" | {total:.2f} |")
    return "\n".join(lines)


def stage_details(data: dict) -> str:
    out = []
    for r in data["rows"][1:]:
        out.append(f"### {r['label']}{' (reused from an earlier run)' if r.get('reused') else ''}")
        cfg = {k: v for k, v in r["config"].items() if k != "kind"}
        out.append(f"- config: `{json.dumps(cfg)}`")
        line = finetune_line(r.get("record"), data["primary_metric"])
        if line:
            out.append(line)
        for k, v in (r.get("record") or {}).items():
            out.append(f"- {k}: {v if not isinstance(v, float) else f'{v:.6g}'}")
        out.append("")
    return "\n".join(out)


def render_markdown(data: dict) -> str:
    task, machine, git = data["task"], data["machine"], data["rnnslim"]
    better = "higher" if data.get("higher_is_better") else "lower"
    commit = git.get("commit") or "unknown (not a git checkout)"
    if git.get("commit") and git.get("dirty"):
        commit += " (with uncommitted changes)"
    lat = data["recipe"]["measure"]
    lines = [
        f"# rnnslim report: {data['recipe']['name']}",
        "",
        f"- date: {data['date']} (run {data['started_at']} to {data['finished_at']}, {data['wall_s']:.1f} s)",
        f"- rnnslim {git.get('version')} at commit {commit}",
        f"- task: {task['name']}, metric `{data['primary_metric']}` ({better} is better); "
        f"evaluated on the valid and test splits"
        + (f" (first {lat['eval_max_steps']} tokens of each)" if lat.get("eval_max_steps") else " (whole splits)"),
        f"- device: {data['device']}",
        "",
        "## Results",
        "",
        "Change and ratios are against the input model (row `input`, saved by rnnslim the same way as every "
        "stage). Artifact bytes are the real bytes on disk of each saved model directory.",
        "",
        results_table(data),
        "",
    ]
    if any((_finetune_of(r.get("record")) or {}).get("kept_input") for r in data["rows"]):
        lines += ["(input kept): the stage's fine-tuning never beat, on validation, the model it started from "
                  "(for a pruning stage: the freshly pruned model), so it kept those weights (see Stages).", ""]
    if any(r.get("reused") for r in data["rows"]):
        lines += ["Rows from an earlier run of this recipe (reused) keep the measurements taken then; "
                  "start fresh to measure every row in one run.", ""]
    if not lat.get("latency"):
        lines += ["Latency was not measured (recipe `measure.latency: false`).", ""]
    elif all(r["measurements"].get("latency_ms") is None for r in data["rows"]):
        lines += ["Latency was requested but not measured: rnnslim.measure.streaming_latency is not available.", ""]
    else:
        lines += [f"Latency: streaming, batch 1, one step with state carried, {lat['threads']} thread(s), "
                  f"median of {lat['repeats']} repeats of {lat['steps']} steps.", ""]
    lines += (["![accuracy vs size](" + data["plot"] + ")"] if data.get("plot") else [f"No plot: {data['plot_note']}"])
    lines += ["", "## Stages", "", stage_details(data), "## Recipe", "", "```yaml",
              yaml.safe_dump(data["recipe"], sort_keys=False).rstrip(), "```", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    lines += ["", "## Timings (seconds)", "", timings_table(data), ""]
    return "\n".join(lines)
