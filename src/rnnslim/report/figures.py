"""The HTML report's figures, each a `<figure id="plot-...">` holding an inline SVG.

    html = stage_loss_figure(data)                  # data: report.json's content
    html = pareto_figure([{"loss": 1.52, "bytes": 90_000, "latency_ms": 0.08, "label": "s=0.5 int8"}, ...],
                         chosen="s=0.5 int8")       # for a search over recipes

Ids (what tests and links find): plot-stage-loss, plot-size, plot-latency,
plot-accuracy-size, plot-sensitivity-NN (NN: the stage index), plot-pareto. A figure
returns "" when it has nothing to show; the page then says why in words.
"""

from __future__ import annotations

from html import escape

from rnnslim.report.svg import bar_chart, color_name, fmt_bytes, fmt_num, group_colors, xy_chart

TORCH_BASELINES = ("torch_default",)  # oneDNN off is the same model: same bytes, other speed


def figure(fig_id: str, title: str, svg: str, caption: str) -> str:
    return (f'<figure id="{escape(fig_id)}"><h3>{escape(title)}</h3>{svg}'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _metric(row: dict, split: str, metric: str) -> float | None:
    return row["measurements"].get("metrics", {}).get(split, {}).get(metric)


def measured_baselines(measurement: dict | None, threads: int) -> dict:
    """From an `rnnslim measure --json` result (rnnslim-measure): {label: {bytes, latency_ms,
    threads}} for the measured model and each baseline that ran, at `threads` if measured
    there (else at the fewest threads measured)."""
    if not measurement or measurement.get("format") != "rnnslim-measure":
        return {}
    ok = [v for v in measurement.get("variants", []) if v.get("status", "ok") == "ok"]
    if not ok:
        return {}
    counts = sorted({v["threads"] for v in ok})
    t = threads if threads in counts else counts[0]
    out = {}
    for v in ok:
        if v["threads"] == t:
            lat = (v.get("latency") or {}).get("median_ms")
            label = "final model (measured)" if v["kind"] == "model" else v["label"]
            out[label] = {"kind": v["kind"], "bytes": v.get("artifact_bytes"), "latency_ms": lat, "threads": t}
    return out


def stage_loss_figure(data: dict) -> str:
    metric = data["primary_metric"]
    bars = []
    for r in data["rows"]:
        for split in ("valid", "test"):
            v = _metric(r, split, metric)
            if v is not None:
                c = r.get("compare", {}).get(split, {})
                note = f"({c['delta']:+.4f})" if r["index"] > 0 and c.get("delta") is not None else ""
                bars.append({"label": f"{r['label']} {split}", "value": v, "group": split, "note": note})
    if not bars:
        return ""
    better = "higher" if data.get("higher_is_better") else "lower"
    title = f"{metric} per stage"
    colors = group_colors(bars)
    splits = " and ".join(f"{g} ({color_name(c)})" for g, c in colors.items())
    return figure("plot-stage-loss", title, bar_chart(bars, title=title, zoom=True),
                  f"{metric} on the {splits} split{'s' if len(colors) > 1 else ''} after each stage ({better} is "
                  "better); in brackets: the change against the input model. The axis is zoomed: it starts near "
                  "the smallest value, not at 0, so bar lengths show differences, not ratios")


def size_figure(data: dict, baselines: dict) -> str:
    bars = [{"label": r["label"], "value": r["measurements"]["artifact_bytes"], "group": "stage",
             "note": f"{r['compare']['bytes_ratio']:.3f}x" if r.get("compare", {}).get("bytes_ratio") else ""}
            for r in data["rows"] if r["measurements"].get("artifact_bytes") is not None]
    bars += [{"label": label, "value": b["bytes"], "group": "baseline"} for label, b in baselines.items()
             if b["bytes"] and (b["kind"] not in ("model", "torch_no_onednn"))]
    if not bars:
        return ""
    colors = group_colors(bars)
    note = (f" {color_name(colors['baseline']).capitalize()}: the baselines of the run's measurement (rnnslim "
            "measure)." if "baseline" in colors else "")
    return figure("plot-size", "Size on disk", bar_chart(bars, fmt=fmt_bytes, title="artifact bytes"),
                  f"Bytes on disk of each saved model ({color_name(colors.get('stage', ''))}; ratio to the input model)."
                  + note)


def latency_figure(data: dict, baselines: dict) -> str:
    bars = [{"label": r["label"], "value": r["measurements"]["latency_ms"], "group": "stage"}
            for r in data["rows"] if r["measurements"].get("latency_ms") is not None]
    bars += [{"label": label, "value": b["latency_ms"], "group": "measured" if b["kind"] == "model" else "baseline"}
             for label, b in baselines.items() if b["latency_ms"] is not None]
    if not bars:
        return ""
    threads = next(iter(baselines.values()))["threads"] if baselines else data["recipe"]["measure"]["threads"]
    colors = group_colors(bars)  # the caption names the colours the chart draws (no stage rows: measured is blue)
    words = {"stage": "the stages", "measured": "the final model", "baseline": "the baselines"}
    legend = "; ".join(f"{color_name(c)}: {words.get(g, g)}" for g, c in colors.items())
    source = ", from the run's measurement (rnnslim measure)" if baselines else ""
    return figure("plot-latency", "Latency per step",
                  bar_chart(bars, fmt=lambda v: f"{v:.3g} ms", title="latency per step"),
                  f"Streaming latency, batch 1, one step with state carried, {threads} thread(s), median; "
                  f"{legend}{source}")


def accuracy_size_figure(data: dict) -> str:
    metric, rows = data["primary_metric"], data["rows"]
    series = []
    for split, marker in (("test", "circle"), ("valid", "square")):
        pts = [(r["measurements"].get("artifact_bytes"), _metric(r, split, metric),
                r["label"] if split == "test" else None) for r in rows]
        if any(y is not None for _, y, _ in pts):
            series.append({"name": split, "points": pts, "line": True, "marker": marker, "dash": split == "valid"})
    if not series:
        return ""
    sizes = [r["measurements"]["artifact_bytes"] for r in rows if r["measurements"].get("artifact_bytes")]
    log_x = bool(sizes) and min(sizes) > 0 and max(sizes) / min(sizes) > 8
    better = "higher" if data.get("higher_is_better") else "lower"
    svg = xy_chart(series, "artifact size on disk", f"{metric} ({better} is better)", title=f"{metric} vs size",
                   log_x=log_x, x_fmt=fmt_bytes)
    return figure("plot-accuracy-size", f"{metric} vs size", svg, f"{metric} against bytes on disk, one point per stage in recipe order")


def sensitivity_figures(data: dict) -> list[str]:
    """One figure per stage whose record holds a pruning sensitivity table (prune_sensitivity)."""
    out = []
    for r in data["rows"]:
        sens = (r.get("record") or {}).get("sensitivity")
        if not isinstance(sens, dict) or not sens.get("table"):
            continue
        series = [{"name": group, "line": True,
                   "points": [(float(s), v, None) for s, v in sorted(row.items(), key=lambda kv: float(kv[0]))]}
                  for group, row in sens["table"].items()]
        svg = xy_chart(series, "sparsity of the group", f"{sens['metric']} ({sens.get('split', 'valid')})",
                       title="pruning sensitivity", hline=(sens["baseline"], "unpruned"),
                       x_fmt=lambda v: f"{v:.0%}")
        out.append(figure(f"plot-sensitivity-{r['index']:02d}", f"Pruning sensitivity ({r['label']})", svg,
                          f"{r['label']}: {sens['metric']} with one group pruned alone "
                          f"({sens.get('criterion', '')}, no fine-tuning); dashed: unpruned"))
    return out


def pareto_front(points: list[dict], x: str = "bytes") -> list[dict]:
    """The points no other point beats on both loss and `x` (lower is better on both), by x."""
    ok = sorted((p for p in points if p.get("loss") is not None and p.get(x) is not None),
                key=lambda p: (p[x], p["loss"]))
    front, best = [], float("inf")
    for p in ok:
        if p["loss"] < best:
            front.append(p)
            best = p["loss"]
    return front


def pareto_figure(points: list[dict], chosen: dict | str | int | None = None, x: str = "bytes",
                  title: str = "search: loss vs size", references: list[dict] | None = None) -> str:
    """A `<figure id="plot-pareto">`: every candidate of a search, its Pareto front (loss vs
    `x`: "bytes" or "latency_ms") and the chosen point. points: [{loss, bytes, latency_ms,
    label}] (lower loss is better); chosen: one of them, its label, or its index; references:
    [{loss, bytes, label}] recipes run outside the search (hand-written ones), drawn as labelled
    squares beside the candidates and never part of the front."""
    if x not in ("bytes", "latency_ms"):
        raise ValueError(f"pareto_figure: x must be 'bytes' or 'latency_ms', got {x!r}")
    for i, p in enumerate(points):
        if not isinstance(p, dict) or "loss" not in p:
            raise ValueError(f"pareto_figure: point {i} must be a dict with 'loss', {x!r} and 'label', got {p!r}")
    if isinstance(chosen, int) and not isinstance(chosen, bool):
        chosen = points[chosen]
    elif isinstance(chosen, str):
        chosen = next((p for p in points if p.get("label") == chosen), None)
    front = pareto_front(points, x)
    front_ids = {id(p) for p in front}
    series = [{"name": "candidates", "color": "#9aa5b1",
               "points": [(p.get(x), p["loss"], None) for p in points if id(p) not in front_ids]},
              {"name": "Pareto front", "line": True, "points": [(p[x], p["loss"], p.get("label")) for p in front]}]
    if chosen is not None:
        series.append({"name": f"chosen: {chosen.get('label', '')}", "marker": "ring", "color": "#c0392b",
                       "points": [(chosen.get(x), chosen["loss"], None)]})
    refs = [r for r in references or [] if r.get("loss") is not None and r.get(x)]
    if refs:
        series.append({"name": "reference recipes", "marker": "square", "color": "#d68910",
                       "points": [(r[x], r["loss"], r.get("label")) for r in refs]})
    xs = [p[x] for p in [*points, *refs] if p.get(x)]
    log_x = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 8
    x_label, x_fmt = (("artifact size on disk", fmt_bytes) if x == "bytes"
                      else ("latency per step (ms)", lambda v: f"{v:.3g}"))
    svg = xy_chart(series, x_label, "loss (lower is better)", title=title, log_x=log_x, x_fmt=x_fmt)
    n = len(points)
    caption = (f"{n} candidate{'s' if n != 1 else ''}, {len(front)} on the Pareto front (no other candidate has "
               f"both lower loss and fewer {'bytes' if x == 'bytes' else 'milliseconds'})")
    if chosen is not None:
        caption += f"; chosen: {chosen.get('label', '')} (loss {fmt_num(chosen['loss'])})"
    if refs:
        caption += f"; squares: {len(refs)} reference recipe{'s' if len(refs) != 1 else ''} run outside the search"
    return figure("plot-pareto", title[:1].upper() + title[1:], svg, caption)
