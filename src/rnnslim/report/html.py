"""report.html: the whole report in one file, for people who click rather than read Markdown.

    html = render_html(data)                       # data: report.json's content
    html = render_html(data, measurement=json.load(open("measure.json")),    # baselines
                       search={"points": [...], "chosen": "label"})          # a search's Pareto plot
    write_html_report("runs/r")                    # (re)build runs/r/report.html from report.json

One self-contained page: no script, no stylesheet or font or image fetched from anywhere
(the charts are inline SVG, report/svg.py), every string from the run escaped. It shows the
header (model, recipe, machine, commit), the per-stage table (metric, params, non-zeros,
bytes, latency, compute time, fine-tuning steps), then the figures (report/figures.py), the
stage details, the recipe and the timings.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import yaml

from rnnslim.report.figures import (
    accuracy_size_figure,
    latency_figure,
    measured_baselines,
    pareto_figure,
    sensitivity_figures,
    size_figure,
    stage_loss_figure,
)
from rnnslim.report.markdown import _finetune_of, _int, _num, finetune_line
from rnnslim.report.names import MEASURE_JSON, REPORT_HTML, REPORT_JSON

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2125;background:#f6f7f9}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:18px}h1{font-size:1.6em;margin:.4em 0}h2{margin-top:1.6em;border-bottom:1px solid #d8dde3}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0}
dl.facts dt{color:#5a6570}dl.facts dd{margin:0}
table{border-collapse:collapse;background:#fff;font-size:.88em;margin:.5em 0}
th,td{border:1px solid #d8dde3;padding:4px 6px;text-align:right;white-space:nowrap}
th{background:#eef1f4;white-space:normal;vertical-align:bottom}
td:first-child{white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:15em}
.scroll{overflow-x:auto;max-width:100%}dd,code{overflow-wrap:anywhere}.pct{display:block;font-size:.85em}h3{font-size:1.05em;margin:0 0 6px}td:first-child,th:first-child{text-align:left}
td.better{color:#1e7d45}td.worse{color:#b03a2e}
figure{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:10px;margin:14px 0}
figure svg{max-width:100%;height:auto;display:block}figcaption{color:#4a545e;font-size:.9em;margin-top:6px}
pre{background:#fff;border:1px solid #d8dde3;padding:10px;overflow-x:auto;font-size:.85em}
.note{color:#4a545e}footer{color:#7a848e;font-size:.85em;padding:24px}
details{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:6px 10px;margin:8px 0}
summary{cursor:pointer;font-weight:600}
"""


def _e(v) -> str:
    return escape(str(v))


def _cell(v: str, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(v)}</td>' if cls else f"<td>{_e(v)}</td>"


def _model_name(data: dict) -> str:
    source = (data["rows"][0].get("config") or {}).get("source")
    return Path(source).name if source else "(a model passed in memory)"


def _commit(data: dict) -> str:
    git = data.get("rnnslim") or {}
    commit = git.get("commit") or "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes)" if git.get("commit") and git.get("dirty") else "")


def _machine_line(m: dict) -> str:
    cores = f"{m.get('logical_cpus')} logical CPUs" if m.get("logical_cpus") else ""
    parts = [m.get("cpu_model"), cores, f"{m['memory_gib']} GiB" if m.get("memory_gib") else None,
             m.get("gpu"), f"torch {m['torch_version']}" if m.get("torch_version") else None, m.get("platform")]
    return ", ".join(str(p) for p in parts if p)


def header(data: dict, measurement: dict | None) -> str:
    task, metric = data["task"], data["primary_metric"]
    better = "higher" if data.get("higher_is_better") else "lower"
    facts = [("model", _model_name(data)), ("recipe", f"{data['recipe']['name']} ({len(data['rows']) - 1} stages: "
             + " → ".join(r["kind"] for r in data["rows"][1:]) + ")"),
             ("task", f"{task['name']}, metric {metric} ({better} is better)"),
             ("machine", _machine_line(data.get("machine") or {})), ("device", data.get("device", "")),
             ("rnnslim", f"{(data.get('rnnslim') or {}).get('version', '')} at commit {_commit(data)}"),
             ("run", f"{data['started_at']} to {data['finished_at']} ({data['wall_s']:.1f} s)")]
    if measurement:
        facts.append(("measurement", "baselines from rnnslim measure, " + str(measurement.get("machine", {})
                                                                           .get("date_utc", ""))))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (f"<header><h1>rnnslim report: {_e(data['recipe']['name'])}</h1>"
            f'<dl class="facts" id="facts">{items}</dl></header>')


def _steps(record: dict | None) -> str:
    ft = _finetune_of(record)
    if ft is not None:
        return f"{ft['steps']:,}" + (" (input kept)" if ft.get("kept_input") else "")
    steps = (record or {}).get("steps")
    return f"{steps:,}" if isinstance(steps, int) and not isinstance(steps, bool) else "—"


def _delta_cell(c: dict, higher_is_better: bool) -> str:
    if c.get("delta") is None:
        return _cell("—")
    good = (c["delta"] > 0) == higher_is_better
    pct = "" if c.get("delta_pct") is None else f'<span class="pct">({c["delta_pct"]:+.2f}%)</span>'
    cls = "" if c["delta"] == 0 else (' class="better"' if good else ' class="worse"')
    return f"<td{cls}>{c['delta']:+.4f}{pct}</td>"  # the percentage on a line of its own: a narrower table


def stage_table(data: dict) -> str:
    metric, hib = data["primary_metric"], bool(data.get("higher_is_better"))
    head = ["stage", f"valid {metric}", "change", f"test {metric}", "change", "params", "non-zeros",
            "artifact bytes", "size vs input", "latency ms/step", "compute s", "fine-tune steps"]
    rows = []
    for r in data["rows"]:
        m, c, t = r["measurements"], r.get("compare") or {}, r.get("timings") or {}
        label = r["label"] + (" (reused)" if r.get("reused") and r["index"] > 0 else "")
        first = r["index"] == 0
        cells = [_cell(label), _cell(_num(c.get("valid", {}).get("value"))),
                 _cell("—") if first else _delta_cell(c.get("valid", {}), hib),
                 _cell(_num(c.get("test", {}).get("value"))),
                 _cell("—") if first else _delta_cell(c.get("test", {}), hib),
                 _cell(_int(m.get("params"))), _cell(_int(m.get("nonzeros"))), _cell(_int(m.get("artifact_bytes"))),
                 _cell("n/a" if c.get("bytes_ratio") is None else f"{c['bytes_ratio']:.3f}x"),
                 _cell(_num(m.get("latency_ms"), 3)),
                 _cell("—" if first else _num(t.get("run_s"), 2)), _cell("—" if first else _steps(r.get("record")))]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    thead = "<tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in head) + "</tr>"
    return (f'<div class="scroll"><table id="stage-table"><thead>{thead}</thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _notes(data: dict, baselines: dict) -> list[str]:
    lat = data["recipe"]["measure"]
    out = ["Change and ratios are against the input model (row input). Artifact bytes are the bytes on disk of each "
           "saved model directory; compute s is the stage's own run time (without measuring)."]
    if not lat.get("latency") and not baselines:
        out.append("Latency was not measured (recipe measure.latency: false; run rnnslim measure on the run "
                   f"directory and save its --json output as {MEASURE_JSON} to add it and the baselines).")
    return [f'<p class="note">{_e(n)}</p>' for n in out]


def stage_details(data: dict) -> str:
    out = []
    for r in data["rows"][1:]:
        cfg = {k: v for k, v in (r.get("config") or {}).items() if k != "kind"}
        items = [f"<li>config: <code>{_e(json.dumps(cfg))}</code></li>"]
        line = finetune_line(r.get("record"), data["primary_metric"])
        if line:
            items.append(f"<li>{_e(line.removeprefix('- ').replace('**', ''))}</li>")
        for k, v in (r.get("record") or {}).items():
            if k in ("markdown", "sensitivity"):
                continue  # shown as a figure
            text = f"{v:.6g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
            items.append(f"<li>{_e(k)}: {_e(text if len(text) < 400 else text[:400] + ' …')}</li>")
        reused = " (reused from an earlier run)" if r.get("reused") else ""
        out.append(f'<details id="stage-{r["index"]:02d}"><summary>{_e(r["label"] + reused)}</summary>'
                   f'<ul>{"".join(items)}</ul></details>')
    return "".join(out)


def timings_table(data: dict) -> str:
    keys = ["run_s", "save_s", "load_s", "evaluate_s", "latency_s"]
    head = "".join(f'<th scope="col">{k}</th>' for k in ["stage", *keys, "total s"])
    rows = []
    for r in data["rows"]:
        t = r.get("timings") or {}
        total = sum(v for v in t.values() if isinstance(v, (int, float)))
        rows.append("<tr>" + _cell(r["label"]) + "".join(_cell(_num(t.get(k), 2)) for k in keys)
                    + _cell(f"{total:.2f}") + "</tr>")
    return (f'<div class="scroll"><table id="timings-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def render_html(data: dict, measurement: dict | None = None, search: dict | None = None) -> str:
    """The page for report data `data` (report.json's content). `measurement`: an `rnnslim
    measure --json` result whose baselines join the size and latency charts. `search`:
    {"points": [{loss, bytes, latency_ms, label}], "chosen": label | index | point} for a
    Pareto plot (also read from data["search"])."""
    baselines = measured_baselines(measurement, data["recipe"]["measure"].get("threads", 1))
    figures = [stage_loss_figure(data), size_figure(data, baselines), latency_figure(data, baselines),
               accuracy_size_figure(data), *sensitivity_figures(data)]
    search = search or data.get("search")
    if search and search.get("points"):
        figures.append(pareto_figure(search["points"], search.get("chosen"), search.get("x", "bytes")))
    recipe_yaml = yaml.safe_dump(data["recipe"], sort_keys=False).rstrip()
    machine = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in (data.get("machine") or {}).items())
    body = [
        header(data, measurement),
        "<main>",
        '<section id="results"><h2>Results</h2>', stage_table(data), *_notes(data, baselines), "</section>",
        '<section id="figures"><h2>Figures</h2>', *[f for f in figures if f], "</section>",
        '<section id="stages"><h2>Stages</h2>', stage_details(data) or "<p>No stages.</p>", "</section>",
        f'<section id="recipe"><h2>Recipe</h2><details><summary>the resolved recipe (defaults filled in)</summary>'
        f"<pre>{_e(recipe_yaml)}</pre></details></section>",
        f'<section id="machine"><h2>Machine</h2><dl class="facts">{machine}</dl></section>',
        '<section id="timings"><h2>Timings (seconds)</h2>', timings_table(data), "</section>",
        "</main>",
        f"<footer>written by rnnslim {_e((data.get('rnnslim') or {}).get('version', ''))} on {_e(data.get('date', ''))}"
        " from report.json; the same numbers as report.md.</footer>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>rnnslim report: {_e(data['recipe']['name'])}</title><style>{CSS}</style></head>"
            "<body>" + "\n".join(body) + "</body></html>\n")


def read_measurement(path: str | Path) -> dict | None:
    """An `rnnslim measure --json` result from `path`, or None when missing; a clear error when
    the file is something else."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a JSON file ({e})") from e
    if not isinstance(data, dict) or data.get("format") != "rnnslim-measure":
        raise ValueError(f"{p}: not an `rnnslim measure --json` result (format 'rnnslim-measure')")
    return data


def write_html_report(run_dir: str | Path, data: dict | None = None, measurement: dict | str | Path | None = None,
                      search: dict | None = None) -> Path:
    """Write run_dir/report.html atomically from `data` (default: run_dir/report.json);
    `measurement` defaults to run_dir/measure.json when that exists. Returns the path."""
    from rnnslim.utils.atomic import write_text_atomic

    run_dir = Path(run_dir)
    if data is None:
        p = run_dir / REPORT_JSON
        if not p.is_file():
            raise FileNotFoundError(f"{run_dir} holds no {REPORT_JSON}; is it an rnnslim compress output directory?")
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("format") != "rnnslim-report":
            raise ValueError(f"{p} is not an rnnslim report (format {data.get('format')!r})")
    if measurement is None or isinstance(measurement, (str, Path)):
        measurement = read_measurement(measurement if measurement is not None else run_dir / MEASURE_JSON)
    out = run_dir / REPORT_HTML
    write_text_atomic(out, render_html(data, measurement, search))
    return out
