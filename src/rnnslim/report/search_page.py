"""A search's report.html: verdict, the Pareto plot (trials, front, best, reference recipes) and
the front as a table, in one self-contained page (inline SVG, every string escaped).

    html = render_search_html(json.load(open("runs/search/results.json")))

The plot shows the full-fidelity trials only: a proxy rung's loss is measured on a subset of the
validation split and would sit on another scale. Reference recipes (results.json "references",
`rnnslim search --reference RUN_DIR`) are measured the same way as the trials (validation metric,
artifact bytes on disk), so they share the axes. For a metric where higher is better (accuracy),
the plot's y axis is 1 - metric, so lower is better on both axes as the front needs.
"""

from __future__ import annotations

from rnnslim.report.figures import pareto_figure
from rnnslim.report.html import CSS, _e
from rnnslim.report.svg import fmt_bytes

def _pct(v: float | None, base: float | None) -> str:
    return "-" if v is None or not base else f"{100 * (v / base - 1):+.2f}%"


def _num(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _full_trials(results: dict) -> list[dict]:
    return [r for r in results.get("trials", []) if r.get("state") == "COMPLETE" and r.get("fidelity") == "full"
            and r.get("loss") is not None and r.get("bytes") and r.get("reused_from") is None]


def search_points(results: dict) -> tuple[list[dict], dict | None, list[dict]]:
    """(points, chosen, references) for pareto_figure: y is the validation metric (1 - metric when
    higher is better), x the artifact bytes."""
    flip = bool(results.get("higher_is_better"))
    y = (lambda v: 1.0 - v) if flip else (lambda v: v)  # noqa: E731
    points = [{"loss": y(r["loss"]), "bytes": r["bytes"], "latency_ms": r.get("latency_ms"),
               "label": f"trial {r['number']}"} for r in _full_trials(results)]
    best = results.get("best") or {}
    chosen = next((p for p in points if p["label"] == f"trial {best.get('trial')}"), None)
    refs = [{"loss": y(r["loss"]), "bytes": r["bytes"], "label": r["label"]} for r in results.get("references") or []]
    return points, chosen, refs


def _front_table(results: dict) -> str:
    base = results.get("baseline") or {}
    front = set(results.get("pareto_front") or [])
    rows = sorted((r for r in _full_trials(results) if r["number"] in front), key=lambda r: r["bytes"])
    head = ("<tr><th>trial</th><th>valid</th><th>change</th><th>test</th><th>change</th><th>bytes</th>"
            "<th>x smaller</th><th>within caps</th><th>parameters</th></tr>")
    body = []
    for r in rows:
        ratio = base.get("bytes", 0) / r["bytes"] if r["bytes"] else 0
        params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
        body.append(f"<tr><td>{r['number']}</td><td>{_num(r['loss'])}</td><td>{_pct(r['loss'], base.get('loss'))}</td>"
                    f"<td>{_num(r.get('test_loss'))}</td><td>{_pct(r.get('test_loss'), base.get('test_loss'))}</td>"
                    f"<td>{r['bytes']:,}</td><td>{ratio:.1f}x</td><td>{'yes' if r.get('feasible') else 'no'}</td>"
                    f'<td style="text-align:left;white-space:normal">{_e(params)}</td></tr>')
    for ref in results.get("references") or []:
        ratio = base.get("bytes", 0) / ref["bytes"]
        body.append(f"<tr><td>{_e(ref['label'])} (reference)</td><td>{_num(ref['loss'])}</td>"
                    f"<td>{_pct(ref['loss'], base.get('loss'))}</td><td>{_num(ref.get('test_loss'))}</td>"
                    f"<td>{_pct(ref.get('test_loss'), base.get('test_loss'))}</td><td>{ref['bytes']:,}</td>"
                    f'<td>{ratio:.1f}x</td><td>-</td><td style="text-align:left">{_e(ref.get("source", ""))}</td></tr>')
    if not body:
        return "<p>No trial reached the full fine-tune yet.</p>"
    return f'<div class="scroll"><table id="front-table"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


def render_search_html(results: dict) -> str:
    """The page for a search's results.json content."""
    points, chosen, refs = search_points(results)
    metric = results.get("metric", "loss")
    title = f"search: validation {'1 - ' if results.get('higher_is_better') else ''}{metric} vs size"
    fig = pareto_figure(points, chosen, "bytes", title, references=refs) if points or refs else (
        "<p>No trial reached the full fine-tune yet: nothing to plot.</p>")
    base = results.get("baseline") or {}
    facts = {"model": results.get("model"), "study": results.get("study"), "budget": results.get("budget") or "none",
             "caps": ", ".join(f"{k} <= {v:,.4g}" for k, v in (results.get("caps") or {}).items()) or "none",
             "prefer": results.get("prefer"), "input model": f"valid {_num(base.get('loss'))}, test "
             f"{_num(base.get('test_loss'))}, {fmt_bytes(base['bytes']) if base.get('bytes') else '-'}",
             "trials": ", ".join(f"{k.lower()} {v}" for k, v in (results.get("states") or {}).items())}
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items())
    verdict = results.get("verdict") or "no verdict (no trial finished)"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>rnnslim search: {_e(results.get('study', ''))}</title><style>{CSS}</style></head><body>"
            f"<header><h1>rnnslim search: {_e(results.get('study', ''))}</h1><dl class=\"facts\">{dl}</dl></header>"
            f'<main><section id="verdict"><h2>Verdict</h2><pre>{_e(verdict)}</pre></section>'
            f'<section id="figures"><h2>Pareto front</h2>{fig}</section>'
            f'<section id="front"><h2>Front (full fine-tune) and references</h2>{_front_table(results)}</section>'
            "</main><footer>written by rnnslim search from results.json (the search ranks on the validation "
            "split; test figures are reported beside it, never used to choose).</footer></body></html>\n")
