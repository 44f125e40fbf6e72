"""report.html: one self-contained page with every figure (parsed here with html.parser; and,
when the `chromium` package is installed, rendered in headless Chromium and looked at)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rnnslim.report import write_report
from rnnslim.report.figures import pareto_figure, pareto_front
from rnnslim.report.html import render_html, write_html_report
from tests.report.pipeline_results import _result

SENSITIVITY = {"metric": "loss_nats", "baseline": 1.45, "sparsities": [0.5, 0.9], "criterion": "magnitude",
               "split": "valid", "higher_is_better": False, "sizes": {"rnn.w_ih": 400, "rnn.w_hh": 400},
               "table": {"rnn.w_ih": {"0.5": 1.46, "0.9": 1.70}, "rnn.w_hh": {"0.5": 1.48, "0.9": 2.10}}}
POINTS = [{"loss": 1.50, "bytes": 40_000, "latency_ms": 0.20, "label": "dense"},
          {"loss": 1.52, "bytes": 20_000, "latency_ms": 0.12, "label": "s=0.5"},
          {"loss": 1.60, "bytes": 30_000, "latency_ms": 0.15, "label": "worse"},  # dominated by s=0.5
          {"loss": 1.70, "bytes": 9_000, "latency_ms": 0.09, "label": "s=0.9 int8"}]
MEASUREMENT = {"format": "rnnslim-measure", "machine": {"date_utc": "2026-01-01"}, "variants": [
    {"kind": "model", "label": "model", "threads": 1, "artifact_bytes": 20_100, "latency": {"median_ms": 0.05}},
    {"kind": "torch_default", "label": "torch nn (default)", "threads": 1, "artifact_bytes": 41_000,
     "latency": {"median_ms": 0.4}},
    {"kind": "ort_fp32", "label": "ONNX Runtime fp32", "threads": 2, "artifact_bytes": 39_000,
     "latency": {"median_ms": 0.3}}]}
FIGURES = {"plot-stage-loss", "plot-size", "plot-latency", "plot-accuracy-size", "plot-sensitivity-02", "plot-pareto"}


class _Page(HTMLParser):
    """Figures by id with the tags inside each; every tag and attribute; all text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, list[str]] = {}
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "figure":
            self._open = a.get("id")
            self.figures[self._open] = []
        elif self._open is not None:
            self.figures[self._open].append(tag)

    def handle_endtag(self, tag):
        if tag == "figure":
            self._open = None

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def _report(tmp_path: Path) -> Path:
    """A run directory with report.json/.md/.html, a sensitivity stage, baselines and a search."""
    res = _result(tmp_path)
    res.rows[2].record = {"sensitivity": SENSITIVITY, "markdown": "| table |"}
    write_report(res, tmp_path)
    (tmp_path / "measure.json").write_text(json.dumps(MEASUREMENT))
    data = json.loads((tmp_path / "report.json").read_text())
    data["search"] = {"points": POINTS, "chosen": "s=0.5"}
    write_html_report(tmp_path, data)
    return tmp_path / "report.html"


def test_every_figure_is_inline_svg_and_nothing_is_fetched(tmp_path):
    page = _parse(_report(tmp_path).read_text())
    assert set(page.figures) == FIGURES
    for fig_id, inner in page.figures.items():
        assert inner.count("svg") == 1 and "figcaption" in inner and "h3" in inner, fig_id
        assert inner.count("rect") + inner.count("circle") + inner.count("polyline") >= 3, fig_id
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object"), tag
        for name in ("src", "href"):
            assert not attrs.get(name), (tag, attrs)
    text = " ".join(page.text)
    # the baselines of measure.json join the size and latency charts (ORT ran only at 2 threads: left out)
    assert "torch nn (default)" in text and "final model (measured)" in text and "ONNX Runtime fp32" not in text
    assert "chosen: s=0.5" in text and "2 candidates" not in text and "4 candidates, 3 on the Pareto front" in text


def test_table_header_and_stage_columns(tmp_path):
    write_report(_result(tmp_path), tmp_path)
    html = (tmp_path / "report.html").read_text()  # written with report.md by every pipeline run
    page = _parse(html)
    assert set(page.figures) == {"plot-stage-loss", "plot-size", "plot-latency", "plot-accuracy-size"}
    table = html.split('id="stage-table"')[1].split("</table>")[0]
    assert "<th scope=\"col\">compute s</th>" in table and "<th scope=\"col\">fine-tune steps</th>" in table
    # 02-cast: valid, change (better: lower loss), test, change, params, non-zeros, bytes, ratio, latency, s, steps
    assert ("<td>02-cast</td><td>1.4600</td><td class=\"better\">-0.0400<span class=\"pct\">(-2.67%)</span></td>"
            "<td>1.5600</td><td class=\"better\">-0.0400<span class=\"pct\">(-2.50%)</span></td><td>1,000</td><td>898</td><td>20,100</td><td>0.502x</td>"
            "<td>0.300</td><td>1.00</td><td>—</td>") in table
    assert "<td>01-finetune (reused)</td>" in table and "<td>3</td></tr>" in table  # its record's steps
    assert "rnnslim report: rep" in html and "commit" in html


def test_user_strings_are_escaped(tmp_path):
    write_report(_result(tmp_path), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    data["recipe"]["name"] = "<script>alert(1)</script>"
    data["rows"][0]["config"]["source"] = '/m/"><img src=x onerror=alert(2)>.json'
    data["rows"][2]["label"] = "<b>cast</b>"
    html = render_html(data, search={"points": [{**POINTS[0], "label": "<i>x</i>"}], "chosen": 0})
    page = _parse(html)
    assert not [t for t, _ in page.tags if t in ("script", "img", "b", "i")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;cast&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" in "".join(page.text)  # shown to the reader as text


def test_pareto_front_and_bad_points():
    assert [p["label"] for p in pareto_front(POINTS)] == ["s=0.9 int8", "s=0.5", "dense"]
    assert [p["label"] for p in pareto_front(POINTS, "latency_ms")] == ["s=0.9 int8", "s=0.5", "dense"]
    page = _parse(pareto_figure(POINTS, chosen=POINTS[3], x="latency_ms"))
    assert list(page.figures) == ["plot-pareto"] and "chosen: s=0.9 int8" in "".join(page.text)
    with pytest.raises(ValueError, match="point 1 must be a dict with 'loss'"):
        pareto_figure([POINTS[0], {"bytes": 3}])
    with pytest.raises(ValueError, match="x must be 'bytes' or 'latency_ms'"):
        pareto_figure(POINTS, x="flops")


def test_rebuild_from_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no report.json"):
        write_html_report(tmp_path)
    write_report(_result(tmp_path), tmp_path)
    (tmp_path / "measure.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not an `rnnslim measure --json` result"):
        write_html_report(tmp_path)
    (tmp_path / "measure.json").unlink()
    (tmp_path / "report.html").unlink()
    assert write_html_report(tmp_path).read_text().startswith("<!DOCTYPE html>")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (Debian package `chromium`)")
def test_chromium_renders_every_figure(tmp_path):
    PIL = pytest.importorskip("PIL.Image", reason="Pillow (the `plot` extra) decodes the screenshot")
    url = _report(tmp_path).resolve().as_uri()
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True).stdout
    page = _parse(dom)
    assert set(page.figures) == FIGURES and all("svg" in inner for inner in page.figures.values())
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,2400", f"--screenshot={shot}", url], capture_output=True,
                   timeout=60, check=True)
    with PIL.open(shot) as im:
        im = im.convert("RGB")
        assert im.size == (1200, 2400)
        colors = im.getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 50  # not blank: text, bars and lines in many colours


def test_cli_report_html(tmp_path):
    from typer.testing import CliRunner

    from rnnslim.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["report", str(tmp_path), "--html"])
    assert r.exit_code == 2 and "holds no report.json" in r.output
    write_report(_result(tmp_path), tmp_path)
    (tmp_path / "report.html").unlink()
    m = tmp_path / "m.json"
    m.write_text(json.dumps(MEASUREMENT))
    r = runner.invoke(app, ["report", str(tmp_path), "--html", "--measurement", str(m), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"markdown": str(tmp_path / "report.md"), "html": str(tmp_path / "report.html")}
    assert "torch nn (default)" in (tmp_path / "report.html").read_text()
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 0 and r.stdout.startswith("# rnnslim report: rep")
    r = runner.invoke(app, ["report", str(tmp_path), "--html", "--measurement", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_charts_survive_odd_numbers():
    from rnnslim.report.svg import bar_chart, log_ticks, nice_ticks, xy_chart

    assert nice_ticks(0.0, 2.7) == [0.0, 1.0, 2.0, 3.0] and nice_ticks(1.43, 1.62) == [1.4, 1.45, 1.5, 1.55, 1.6, 1.65] and nice_ticks(5.0, 5.0)[0] < 5.0
    assert log_ticks(9_000, 40_000) == [5_000, 10_000, 20_000, 50_000]
    svg = bar_chart([{"label": "a", "value": float("inf")}, {"label": "b", "value": 0.0}])
    assert svg.count("<rect") == 2  # the background and b's bar: no bar for an infinite value
    svg = xy_chart([{"name": "s", "points": [(float("nan"), 1.0, "x"), (None, 2.0, None)]}], "x", "y", log_x=True,
                   hline=(float("inf"), "ref"))
    assert svg.startswith("<svg") and "ref" not in svg
