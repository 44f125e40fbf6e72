"""report.html at 1280 px in headless Chromium: the results table fits (no horizontal overflow of
the page or of the table's box) and no two point labels of a chart overlap as rendered.

Skipped without the Debian package `chromium` (the suite never depends on it); the same
properties are checked without a browser on the plotted data in test_figures.py / test_svg.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnslim.pipeline.recipe import Recipe
from rnnslim.pipeline.result import PipelineResult, StageRow
from rnnslim.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280

# measures the page after load and appends the numbers as JSON in <pre id="layout"> (--dump-dom reads it)
PROBE = """<script>addEventListener('load', () => {
  const table = document.getElementById('stage-table'), box = table.parentElement;
  const overlaps = [];
  for (const svg of document.querySelectorAll('svg')) {
    const r = [...svg.querySelectorAll('.point-label')].map(e => [e.textContent, e.getBoundingClientRect()]);
    for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) {
      const a = r[i][1], b = r[j][1];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
        overlaps.push([r[i][0], r[j][0]]);
    }
  }
  const out = {viewport: innerWidth, page: document.documentElement.scrollWidth,
               box_right: box.getBoundingClientRect().right, table: table.scrollWidth, box: box.clientWidth,
               labels: document.querySelectorAll('.point-label').length, overlaps};
  const pre = document.createElement('pre'); pre.id = 'layout'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def _row(i: int, kind: str, loss: float, size: int) -> StageRow:
    metrics = {"valid": {"loss_nats": loss}, "test": {"loss_nats": loss + 0.01}}
    return StageRow(index=i, kind=kind, dir=f"stages/{i:02d}-{kind}", config={"kind": kind}, hash=f"h{i}",
                    reused=i == 1, measurements={"metrics": metrics, "params": 4_269_121, "nonzeros": 4_269_121,
                                                 "artifact_bytes": size, "latency_ms": 8.0581},
                    timings={"run_s": 1234.5}, record={"steps": 2000})


def _long_report(tmp_path: Path) -> Path:
    """Wide cells: long stage names, 8-digit byte counts, latency, every column filled."""
    recipe = Recipe.from_yaml("version: 1\nname: wide\nmeasure: {latency: true}\nstages:\n"
                              "  - {kind: finetune, max_steps: 3}\n  - {kind: cast, dtype: bf16}\n"
                              "  - {kind: cast, dtype: fp16}\n")
    rows = [_row(0, "input", 1.5061, 17_079_359), _row(1, "finetune", 1.5090, 17_079_400),
            _row(2, "int8_integer_reconstruct_gptq", 1.5150, 4_262_000),
            _row(3, "quantize_weights_int3_folded", 1.5152, 821_766)]
    res = PipelineResult(recipe=recipe, out_dir=tmp_path, model=None, rows=rows,
                         task={"name": "charlm", "primary_metric": "loss_nats", "higher_is_better": False, "meta": {}},
                         device="cpu", started_at="2026-01-01T00:00:00+00:00",
                         finished_at="2026-01-01T01:00:00+00:00", wall_s=3600.0)
    write_report(res, tmp_path)
    page = (tmp_path / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    return probed


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package `chromium`)")
def test_results_table_fits_at_1280_px_and_labels_do_not_overlap(tmp_path):
    page = _long_report(tmp_path)
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=90, check=True).stdout
    layout = json.loads(dom.split('<pre id="layout">')[1].split("</pre>")[0])
    assert layout["viewport"] == WIDTH
    assert layout["page"] <= WIDTH, layout  # nothing pushes the page sideways
    assert layout["box_right"] <= WIDTH, layout  # the table's box ends inside the window
    assert layout["table"] <= layout["box"], layout  # and the table fits its box: no column hidden
    assert layout["labels"] >= 4 and layout["overlaps"] == [], layout
