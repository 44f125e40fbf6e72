"""write_report: report.json (for machines), report.md and report.html (for people), accuracy_vs_size.png."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from rnnslim.report.compare import compare_rows
from rnnslim.report.html import read_measurement, write_html_report
from rnnslim.report.machine import git_commit, machine_info
from rnnslim.report.markdown import render_markdown
from rnnslim.report.names import MEASURE_JSON, PLOT_PNG, REPORT_HTML, REPORT_JSON, REPORT_MD
from rnnslim.report.plots import plot_accuracy_vs_size

REPORT_FORMAT = "rnnslim-report"
REPORT_VERSION = 1


def report_data(result) -> dict:
    """The report as one JSON-able dict, from a PipelineResult."""
    import rnnslim
    from rnnslim.utils.jsonable import jsonable

    base = result.to_dict()
    metric = result.task["primary_metric"]
    return jsonable({
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rnnslim": {"version": rnnslim.__version__, **git_commit()},
        "machine": machine_info(result.device),
        "primary_metric": metric,
        "higher_is_better": result.task["higher_is_better"],
        **{k: v for k, v in base.items() if k != "rows"},
        "rows": compare_rows(base["rows"], metric),
    })


def write_report(result, out_dir: str | Path) -> dict[str, str]:
    """Write the report files into out_dir; return {markdown, json, html, plot} paths
    (plot is absent when matplotlib is missing; the Markdown then says so). report.html
    needs no matplotlib; it adds the baselines of out_dir/measure.json when that is there."""
    from rnnslim.utils.atomic import write_json_atomic as write_json
    from rnnslim.utils.atomic import write_text_atomic as write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report_data(result)
    note = plot_accuracy_vs_size(data, out / PLOT_PNG)
    data["plot"] = None if note else PLOT_PNG
    data["plot_note"] = note
    write_json(out / REPORT_JSON, data)
    write_text(out / REPORT_MD, render_markdown(data))
    try:
        measurement = read_measurement(out / MEASURE_JSON)
    except ValueError:  # some other file of that name: the page goes without baselines
        measurement = None
    write_html_report(out, data, measurement or {})
    paths = {"markdown": str(out / REPORT_MD), "json": str(out / REPORT_JSON), "html": str(out / REPORT_HTML)}
    if not note:
        paths["plot"] = str(out / PLOT_PNG)
    return paths
