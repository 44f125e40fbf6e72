"""write_report: the three files, their rows, and the plot being optional."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rnnslim.report import write_report
from rnnslim.report.compare import compare_rows
from rnnslim.report.markdown import render_markdown
from tests.report.pipeline_results import RECIPE, _result

def test_compare_rows_against_the_input():
    data = _result(Path("/x")).to_dict()
    rows = compare_rows(data["rows"], "loss_nats")
    c = rows[2]["compare"]
    assert c["test"]["delta"] == pytest.approx(-0.04) and c["test"]["delta_pct"] == pytest.approx(-2.5)
    assert c["bytes_ratio"] == pytest.approx(20_100 / 40_000) and c["latency_ratio"] == pytest.approx(1.5)
    assert rows[0]["compare"]["bytes_ratio"] == 1.0


def test_writes_markdown_json_and_plot(tmp_path):
    paths = write_report(_result(tmp_path), tmp_path)
    assert set(paths) == {"markdown", "json", "html", "plot"}
    png = (tmp_path / "accuracy_vs_size.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    data = json.loads((tmp_path / "report.json").read_text())
    assert data["format"] == "rnnslim-report" and data["version"] == 1
    assert data["recipe"] == RECIPE.to_dict() and data["plot"] == "accuracy_vs_size.png"
    assert "commit" in data["rnnslim"] and data["machine"]["device"] == "cpu" and data["date"]
    assert [r["label"] for r in data["rows"]] == ["input", "01-finetune", "02-cast"]
    assert data["rows"][2]["compare"]["valid"]["delta"] == pytest.approx(-0.04)

    md = (tmp_path / "report.md").read_text()
    assert md == render_markdown(data)  # the Markdown can be rebuilt from report.json
    table = md.split("## Results")[1].split("## Stages")[0]
    assert "| input | 1.5000 | — | 1.6000 | — | 1,000 | 900 | 40,000 | 1.000x | 0.200 | 1.000x |" in table
    assert "| 01-finetune (reused) | 1.4500 | -0.0500 (-3.33%) |" in table
    assert "| 02-cast | 1.4600 | -0.0400 (-2.67%) | 1.5600 | -0.0400 (-2.50%) | 1,000 | 898 | 20,100 | 0.502x |" \
           " 0.300 | 1.500x |" in table
    assert "![accuracy vs size](accuracy_vs_size.png)" in md
    assert "```yaml\nversion: 1\nname: rep" in md and "## Machine" in md and "## Timings" in md
    assert "- steps: 3" in md  # the stage's record


def test_without_latency_the_columns_are_left_out(tmp_path):
    write_report(_result(tmp_path, lat=False), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "latency ms/step" not in md and "Latency was requested but not measured" in md


def test_without_matplotlib_the_report_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    paths = write_report(_result(tmp_path), tmp_path)
    assert "plot" not in paths and not (tmp_path / "accuracy_vs_size.png").exists()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["plot"] is None and "matplotlib is not installed" in data["plot_note"]
    assert "No plot: matplotlib is not installed" in (tmp_path / "report.md").read_text()


def test_finetune_summary_says_whether_the_input_was_kept(tmp_path):
    from rnnslim.report.markdown import finetune_line

    res = _result(tmp_path, lat=False)
    res.rows[1].record = {"steps": 3, "wall_s": 1.0, "evaluations": 4, "input_valid": 1.45, "best_valid": 1.45,
                          "best_step": 0, "kept_input": True}
    res.rows[2].record = {"finetune": {"steps": 8, "wall_s": 2.0, "evaluations": 5, "input_valid": 1.6,
                                       "best_valid": 1.46, "best_step": 6, "kept_input": False}}
    write_report(res, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| 01-finetune (reused) (input kept) | 1.4500 |" in md and "| 02-cast | 1.4600 |" in md
    assert "- fine-tuning: 3 steps in 1.0 s, 4 evaluations; **no evaluation beat the input** (valid loss_nats " \
           "1.4500), so the input weights were kept" in md
    assert "valid loss_nats 1.6000 before, best 1.4600 at step 6 (kept)" in md
    assert finetune_line({"steps": 3}, "loss_nats") is None
