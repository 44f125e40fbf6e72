"""The inline SVG charts: a zoomed value axis that says so, one palette with names, labels apart."""

from __future__ import annotations

import itertools
import re

from rnnslim.report.svg import (
    BASELINE_COLOR,
    PALETTE,
    bar_axis,
    bar_chart,
    color_name,
    group_colors,
    boxes_overlap,
    label_box,
    place_labels,
    xy_chart,
)


def _ticks(svg: str) -> list[str]:
    """The value axis' tick labels of a bar chart (middle-anchored texts under the bars)."""
    return re.findall(r'text-anchor="middle" fill="#555">([^<]*)</text>', svg)


def test_zoomed_axis_starts_near_the_smallest_value_and_says_so():
    values = [1.500, 1.509]  # a 0.6 % change: invisible on an axis from 0
    ticks = bar_axis(values, zoom=True)
    assert 1.49 <= ticks[0] < 1.500 and ticks[-1] >= 1.509
    assert bar_axis(values)[0] == 0.0  # without zoom bars start at zero
    svg = bar_chart([{"label": "input", "value": 1.500}, {"label": "cut", "value": 1.509}], zoom=True)
    assert _ticks(svg)[0] == f"{ticks[0]:.4g}" and "the axis starts at" in svg and "not at 0" in svg
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[1] / widths[0] > 1.5  # the 0.6 % difference is a visible difference in length
    plain = bar_chart([{"label": "input", "value": 1.500}, {"label": "cut", "value": 1.509}])
    assert _ticks(plain)[0] == "0" and "not at 0" not in plain


def test_zoom_falls_back_to_zero_when_it_cannot_help():
    assert bar_axis([0.0, 5.0], zoom=True)[0] == 0.0
    assert bar_axis([-1.0, 2.0], zoom=True)[0] == 0.0
    assert bar_axis([], zoom=True)[0] == 0.0


def test_group_colours_follow_the_order_bar_chart_draws():
    bars = [{"label": "m", "value": 1, "group": "measured"}, {"label": "b", "value": 2, "group": "baseline"}]
    colors = group_colors(bars)
    assert colors == {"measured": PALETTE[0], "baseline": BASELINE_COLOR}
    assert color_name(colors["measured"]) == "blue" and color_name(colors["baseline"]) == "grey"
    assert f'fill="{PALETTE[0]}"' in bar_chart(bars)
    assert group_colors([{"group": "stage"}, {"group": "measured"}])["measured"] == PALETTE[1]  # orange second


def test_placed_labels_never_overlap_even_on_one_spot():
    points = [(300.0, 200.0, f"stage {i} with a long name") for i in range(6)]
    points += [(305.0, 203.0, "02-int8_integer"), (500.0, 100.0, "far away")]
    bounds = (0.0, 0.0, 760.0, 420.0)
    places = place_labels(points, bounds)
    boxes = [label_box(x, y, text, anchor) for (x, y, anchor), (_, _, text) in zip(places, points)]
    assert not [pair for pair in itertools.combinations(boxes, 2) if boxes_overlap(*pair)]
    assert all(bounds[0] <= b[0] and b[2] <= bounds[2] and bounds[1] <= b[1] and b[3] <= bounds[3] for b in boxes)
    assert places[-1][:2] == (507.0, 93.0)  # a label with room stays right above its point


def test_xy_chart_labels_are_apart_in_the_drawing():
    series = [{"name": "test", "line": True, "points": [(40_000, 1.60, "input"), (40_100, 1.55, "01-finetune"),
                                                        (40_050, 1.56, "02-prune_units"), (20_100, 1.56, "03-cast")]}]
    svg = xy_chart(series, "bytes", "loss")
    found = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)" font-size="11" class="point-label">'
                       r"([^<]*)</text>", svg)
    assert sorted(t for *_, t in found) == ["01-finetune", "02-prune_units", "03-cast", "input"]
    boxes = [label_box(float(x), float(y), text, anchor) for x, y, anchor, text in found]
    assert not [pair for pair in itertools.combinations(boxes, 2) if boxes_overlap(*pair)]
