"""The report's figures: what they plot (axis range, colours named in captions, labels apart)."""

from __future__ import annotations

import itertools
import re

from rnnslim.report.figures import accuracy_size_figure, latency_figure, measured_baselines, stage_loss_figure
from rnnslim.report.svg import boxes_overlap, label_box


def _row(i: int, label: str, valid: float, test: float, size: int, latency: float | None = None) -> dict:
    return {"index": i, "label": label,
            "measurements": {"metrics": {"valid": {"loss_nats": valid}, "test": {"loss_nats": test}},
                             "artifact_bytes": size, "latency_ms": latency},
            "compare": {"valid": {"delta": valid - 1.500}, "test": {"delta": test - 1.510},
                        "bytes_ratio": size / 40_000}}


def _data(latency: bool = False) -> dict:
    lat = (lambda v: v) if latency else (lambda v: None)
    rows = [_row(0, "input", 1.500, 1.510, 40_000, lat(0.2)), _row(1, "01-prune_units", 1.5090, 1.5190, 30_000, lat(0.15)),
            _row(2, "02-finetune", 1.5030, 1.5120, 30_010, lat(0.15)), _row(3, "03-int8_integer", 1.5040, 1.5130, 9_000, lat(0.05))]
    return {"primary_metric": "loss_nats", "higher_is_better": False, "rows": rows,
            "recipe": {"measure": {"threads": 1, "latency": latency}}}


def _caption(html: str) -> str:
    return re.search(r"<figcaption>(.*)</figcaption>", html).group(1)


def test_loss_bars_are_zoomed_so_a_small_change_shows():
    html = stage_loss_figure(_data())
    ticks = [float(v) for v in re.findall(r'text-anchor="middle" fill="#555">([\d.]+)</text>', html)]
    assert 1.45 < ticks[0] <= 1.500 and ticks[-1] >= 1.519  # not from 0: the 0.6 % change is visible
    assert "not at 0" in html and "zoomed" in _caption(html)
    assert "valid (blue) and test (orange)" in _caption(html)


def test_latency_caption_names_the_colours_drawn():
    measurement = {"format": "rnnslim-measure", "variants": [
        {"kind": "model", "label": "model", "threads": 1, "artifact_bytes": 9_000, "latency": {"median_ms": 0.05}},
        {"kind": "torch_default", "label": "torch nn (default)", "threads": 1, "artifact_bytes": 40_000,
         "latency": {"median_ms": 0.4}}]}
    baselines = measured_baselines(measurement, 1)
    # the demo's case: no stage latency, so the measured final model is the first (blue) group
    html = latency_figure(_data(latency=False), baselines)
    assert "blue: the final model" in _caption(html) and "grey: the baselines" in _caption(html)
    assert "orange" not in _caption(html)
    assert re.search(r'fill="#2f6db5" rx="2"><title>final model \(measured\)', html)  # blue is drawn for it
    html = latency_figure(_data(latency=True), baselines)
    assert "blue: the stages; orange: the final model; grey: the baselines" in _caption(html)


def test_loss_vs_size_labels_do_not_overlap():
    html = accuracy_size_figure(_data())
    found = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)" font-size="11" class="point-label">'
                       r"([^<]*)</text>", html)
    assert sorted(t for *_, t in found) == ["01-prune_units", "02-finetune", "03-int8_integer", "input"]
    boxes = [label_box(float(x), float(y), text, anchor) for x, y, anchor, text in found]
    assert not [pair for pair in itertools.combinations(boxes, 2) if boxes_overlap(*pair)]
