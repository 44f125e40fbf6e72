"""Two small inline SVG charts for the HTML report: horizontal bars and x-y points/lines.

    svg = bar_chart([{"label": "input", "value": 40_000}, {"label": "02-cast", "value": 20_100}],
                    fmt=fmt_bytes, title="artifact bytes")
    svg = xy_chart([{"name": "test", "points": [(40e3, 1.6, "input"), (20e3, 1.56, "02-cast")], "line": True}],
                   x_label="bytes", y_label="loss", log_x=True)

No dependency (matplotlib stays optional), no script, no ids inside the SVG (several charts
share one page), every string escaped: the page opens anywhere and can be searched as text.
Bars start at zero (an honest length) unless `zoom=True`: then the axis starts near the
smallest value, so a 0.6 % change shows, and the chart says so under its axis. The exact
numbers are printed beside each bar. Colours come from one palette, and captions name them
with color_name(group_colors(bars)[group]) so that the words always match the picture.
Point labels are placed so that none overlaps another (place_labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

PALETTE = ["#2f6db5", "#e07b24", "#2e9e5b", "#9b4dca", "#c0392b", "#1aa3b8", "#7a7a7a", "#b8962e"]
BASELINE_COLOR = "#9aa5b1"
COLOR_NAMES = dict(zip([*PALETTE, BASELINE_COLOR],
                       ["blue", "orange", "green", "purple", "red", "teal", "dark grey", "ochre", "grey"]))
LABEL_CHAR_W, LABEL_H = 6.3, 13.0  # a point label at font-size 11: width per character, line height (px)


def color_name(color: str) -> str:
    """The word a caption uses for a palette colour."""
    return COLOR_NAMES.get(color, color)


def group_colors(bars: list[dict]) -> dict[str, str]:
    """{group: colour} as bar_chart draws them: groups in order of appearance, "baseline" grey."""
    groups = list(dict.fromkeys(b.get("group", "") for b in bars if b.get("group") != "baseline"))
    out = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    if any(b.get("group") == "baseline" for b in bars):
        out["baseline"] = BASELINE_COLOR
    return out
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'


def fmt_num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


def fmt_bytes(v: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} B"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not hi > lo:
        lo, hi = (lo - 1, hi + 1) if lo == 0 else (lo - abs(lo) * 0.1, hi + abs(hi) * 0.1)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decades covering [lo, hi] (lo > 0), with 2x and 5x steps when they span under three."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    b = max(b, a + 1)
    mults = (1,) if b - a >= 3 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(a, b + 1) for m in mults]
    inner = [t for t in ticks if lo <= t <= hi]
    below = [t for t in ticks if t < lo]
    above = [t for t in ticks if t > hi]
    return (below[-1:] + inner + above[:1]) if inner else (below[-1:] + above[:1])


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" {FONT} font-size="12"><title>{escape(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>')


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def bar_axis(values: list[float], zoom: bool = False) -> list[float]:
    """The value axis' ticks: from zero, or (zoom) from a round value below the smallest bar,
    about half the values' spread below it, so that small differences get visible lengths."""
    vmax = max(values, default=1.0) or 1.0
    if zoom and values and min(values) > 0:
        vmin = min(values)
        lo = vmin - max(0.5 * (vmax - vmin), 0.002 * vmax)
        if lo > 0:
            ticks = nice_ticks(lo, vmax, 4)
            if ticks[0] > 0:
                return ticks
    return nice_ticks(0.0, vmax, 4)


def bar_chart(bars: list[dict], fmt: Callable[[float], str] = fmt_num, title: str = "",
              width: int = 760, label_width: int = 210, zoom: bool = False) -> str:
    """Horizontal bars. bars: {label, value, group?, note?}; `group` picks a colour (bars of one
    group share it; group "baseline" is grey; group_colors), `note` is printed after the value.
    zoom: the axis starts near the smallest value (bar_axis), said under the axis."""
    bars = [b for b in bars if _finite(b["value"])]  # an infinite loss has no bar length (the table shows it)
    ticks = bar_axis([b["value"] for b in bars], zoom)
    zoomed = ticks[0] > 0
    row, top, bottom = 24, 10, 28 + (16 if zoomed else 0)
    height = top + row * len(bars) + bottom
    longest = max((len(b["label"]) for b in bars), default=0)
    label_width = max(label_width, min(int(6.8 * longest) + 16, width // 2))  # long stage names stay whole
    x0, x1 = label_width, width - 150  # room for the value text right of the longest bar
    scale = (x1 - x0) / (ticks[-1] - ticks[0])
    colors = group_colors(bars)
    out = [_svg_open(width, height, title)]
    axis_bottom = top + row * len(bars)
    for t in ticks:
        x = x0 + (t - ticks[0]) * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_bottom}" stroke="#e3e6ea"/>')
        out.append(_text(x, axis_bottom + 16, fmt(t), "middle", ' fill="#555"'))
    if zoomed:
        out.append(_text(x0, axis_bottom + 32, f"zoomed: the axis starts at {fmt(ticks[0])}, not at 0",
                         extra=' fill="#b03a2e" font-size="11" class="axis-note"'))
    for i, b in enumerate(bars):
        y = top + i * row
        color = colors[b.get("group", "")]
        w = max((b["value"] - ticks[0]) * scale, 0.5)
        out.append(_text(x0 - 8, y + row * 0.65, b["label"], "end"))
        out.append(f'<rect x="{x0}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{color}" rx="2">'
                   f'<title>{escape(b["label"])}: {escape(fmt(b["value"]))}</title></rect>')
        note = f'  {b["note"]}' if b.get("note") else ""
        out.append(_text(x0 + w + 6, y + row * 0.65, fmt(b["value"]) + note, extra=' fill="#222"'))
    out.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{axis_bottom}" stroke="#444"/>')
    out.append("</svg>")
    return "".join(out)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in SVG pixels


def boxes_overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_box(x: float, y: float, text: str, anchor: str) -> Box:
    """The box a label takes when its baseline starts (anchor start) or ends (end) at (x, y)."""
    w = LABEL_CHAR_W * len(text)
    x0 = x if anchor == "start" else x - w
    return (x0, y - LABEL_H + 3, x0 + w, y + 3)


def place_labels(points: list[tuple[float, float, str]], bounds: Box,
                 obstacles: list[Box] = ()) -> list[tuple[float, float, str]]:
    """(x, y, anchor) for each label (px, py, text) so that no two labels overlap, none covers a
    point in `obstacles` and each stays inside `bounds` when it can: beside its point first
    (right above, right below, left above, left below), then further up or down the same side."""
    placed: list[Box] = []
    out = []
    for px, py, text in points:
        options = []
        for k in range(12):
            lift = k * LABEL_H
            options += [(px + 7, py - 7 - lift, "start"), (px + 7, py + 15 + lift, "start"),
                        (px - 7, py - 7 - lift, "end"), (px - 7, py + 15 + lift, "end")]
        chosen = None
        for x, y, anchor in options:
            box = label_box(x, y, text, anchor)
            inside = box[0] >= bounds[0] and box[1] >= bounds[1] and box[2] <= bounds[2] and box[3] <= bounds[3]
            if inside and not any(boxes_overlap(box, o) for o in [*placed, *obstacles]):
                chosen = (x, y, anchor)
                break
        chosen = chosen or options[0]  # crowded beyond 48 places: the first place, the tooltip tells the rest
        placed.append(label_box(*chosen[:2], text, chosen[2]))
        out.append(chosen)
    return out


def _star(x: float, y: float, r: float) -> str:
    pts = []
    for k in range(10):
        a = -math.pi / 2 + k * math.pi / 5
        rr = r if k % 2 == 0 else r * 0.45
        pts.append(f"{x + rr * math.cos(a):.1f},{y + rr * math.sin(a):.1f}")
    return " ".join(pts)


def _marker(kind: str, x: float, y: float, color: str, tip: str) -> str:
    tip = f"<title>{escape(tip)}</title>"
    if kind == "star":
        return f'<polygon points="{_star(x, y, 9)}" fill="{color}" stroke="#222" stroke-width="0.8">{tip}</polygon>'
    if kind == "ring":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="{color}" stroke-width="2.5">{tip}</circle>'
    if kind == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#fff" stroke="{color}" stroke-width="1.6">{tip}</rect>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.2" fill="{color}">{tip}</circle>'


def xy_chart(series: list[dict], x_label: str, y_label: str, title: str = "", log_x: bool = False,
             hline: tuple[float, str] | None = None, x_fmt: Callable[[float], str] = fmt_num,
             width: int = 760, height: int = 420) -> str:
    """Points and lines. series: {name, points: [(x, y, label-or-None)], line?: bool, marker?:
    circle|square|star|ring, color?, dash?: bool}; labels are written beside their points.
    `hline` = (y, name): a dashed reference line (e.g. the unpruned model)."""
    hline = hline if hline is not None and _finite(hline[0]) else None
    colors = [s.get("color") or PALETTE[k % len(PALETTE)] for k, s in enumerate(series)]
    legend = ([("dash", "#666", hline[1])] if hline is not None else []) + \
        [(s.get("marker", "circle"), c, s["name"]) for s, c in zip(series, colors)]
    places, lx, ly = [], 74, 14  # legend rows above the plot, wrapped at the chart's width
    for entry in legend:
        w = 34 + 6.6 * len(entry[2])
        if lx + w > width - 10 and lx > 74:
            lx, ly = 74, ly + 18
        places.append((lx, ly))
        lx += w
    left, right, top, bottom = 74, 24, ly + 20, 52
    height += ly - 14
    series = [{**s, "points": [p for p in s["points"] if _finite(p[0]) and _finite(p[1])]} for s in series]
    pts = [(x, y) for s in series for x, y, _ in s["points"]]
    if log_x:
        pts = [(x, y) for x, y in pts if x > 0]
    xs, ys = [p[0] for p in pts] or ([1.0, 10.0] if log_x else [0.0, 1.0]), [p[1] for p in pts] or [0.0, 1.0]
    if hline is not None:
        ys = [*ys, hline[0]]
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.08 or abs(yhi) * 0.05 or 1.0
    yt = nice_ticks(ylo - pad, yhi + pad, 5)
    if log_x:
        xt = log_ticks(min(xs), max(xs))
        fx_raw = math.log10
    else:
        xpad = (max(xs) - min(xs)) * 0.06 or abs(max(xs)) * 0.1 or 1.0
        xt = nice_ticks(min(xs) - xpad, max(xs) + xpad, 6)
        fx_raw = float
    xa, xb = fx_raw(xt[0]), fx_raw(xt[-1])
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (fx_raw(x) - xa) / (xb - xa) * pw

    def py(y: float) -> float:
        return top + ph - (y - yt[0]) / (yt[-1] - yt[0]) * ph

    out = [_svg_open(width, height, title)]
    for t in yt:
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" stroke="#e3e6ea"/>')
        out.append(_text(left - 6, py(t) + 4, fmt_num(t), "end", ' fill="#555"'))
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + ph}" stroke="#e3e6ea"/>')
        out.append(_text(px(t), top + ph + 16, x_fmt(t), "middle", ' fill="#555"'))
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(_text(left + pw / 2, height - 10, x_label, "middle"))
    out.append(_text(16, top + ph / 2, y_label, "middle", f' transform="rotate(-90 16 {top + ph / 2:.1f})"'))
    if hline is not None:
        y = py(hline[0])
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#666" '
                   f'stroke-dasharray="6 4"/>')
    for (kind, color, name), (x, y) in zip(legend, places):
        if kind == "dash":
            out.append(f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{color}" stroke-dasharray="6 4"/>')
            out.append(_text(x + 27, y + 4, name))
        else:
            out.append(_marker(kind, x + 8, y, color, name))
            out.append(_text(x + 20, y + 4, name))
    for s, color in zip(series, colors):
        spts = [(x, y, lab) for x, y, lab in s["points"] if x > 0 or not log_x]
        if s.get("line") and len(spts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in spts)
            dash = ' stroke-dasharray="5 3"' if s.get("dash") else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        marker = s.get("marker", "circle")
        for x, y, lab in spts:
            out.append(_marker(marker, px(x), py(y), color, f"{lab or s['name']}: {x_fmt(x)}, {fmt_num(y)}"))
    drawn = [(px(x), py(y), lab) for s in series for x, y, lab in s["points"] if x > 0 or not log_x]
    marks = [(a - 5, b - 5, a + 5, b + 5) for a, b, _ in drawn]
    labels = [(a, b, lab) for a, b, lab in drawn if lab]
    for (a, b, lab), (x, y, anchor) in zip(labels, place_labels(labels, (left + 2, top + 2, left + pw - 2,
                                                                         top + ph - 2), marks)):
        if abs(y - b) > 2 * LABEL_H:  # moved away from its point: a thin leader line back to it
            out.append(f'<line x1="{a:.1f}" y1="{b:.1f}" x2="{x:.1f}" y2="{y - 4:.1f}" stroke="#999" stroke-width="0.7"/>')
        out.append(_text(x, y, lab, anchor, ' font-size="11" class="point-label"'))
    out.append("</svg>")
    return "".join(out)
