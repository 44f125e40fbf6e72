"""Plain-text rendering of a MeasureReport: the headline, a summary of the model(s), then one
row per variant. Speed is shown as a speed-up over the fastest torch row (> 1 = faster), so
no column has to be inverted by the reader; footnotes (*) say what a row's batch pass ran when
that differs from its step (the C kernel has no batch path).

It reads the report's fields and imports nothing from results.py, which imports it for
MeasureReport.table(): `report` is a MeasureReport, `m` a ModelSummary, `v` a VariantResult
(rnnslim.measure.results), passed in rather than imported so the two modules form no cycle."""

from __future__ import annotations


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def fmt_count(n: int) -> str:
    return f"{n / 1e6:.3f} M" if n >= 1e5 else f"{n:,}"


def _summary(tag: str, m) -> list[str]:
    s, k = m.size, m.macs
    lines = [f"{tag}: {m.name}",
             f"  parameters {fmt_count(s.parameters)} (non-zero {fmt_count(s.nonzero_parameters)}, "
             f"{100 * s.density:.1f}%), artifact {fmt_bytes(s.artifact_bytes)} ({s.bits_per_parameter:.2f} bits/param), "
             f"MACs/step {fmt_count(k.dense)} (non-zero {fmt_count(k.nonzero)})"]
    if m.quality is not None:
        q = m.quality
        shown = ", ".join(f"{name} {val:.4f}" for name, val in q.metrics.items() if name not in ("loss", "tokens"))
        where = f"{q.split} split" if q.split else q.source
        partial = f", first {q.max_steps} steps only (quick)" if q.max_steps else ""
        lines.append(f"  quality ({where}{partial}): {shown}")
    return lines


def _row(v) -> list[str]:
    if v.status != "ok":
        return [v.label, str(v.threads), v.status, "", "", "", "", "", "", ""]
    lat = v.latency
    step = f"{lat.median_ms:.4f} [{lat.spread_ms[0]:.4f}-{lat.spread_ms[1]:.4f}]" if lat else "-"
    speedup = v.speedup_vs_best_torch
    if speedup is None and v.ratio_vs_best_torch:  # a report written before the field existed
        speedup = 1 / v.ratio_vs_best_torch
    ratio = f"{speedup:.2f}x" if speedup is not None else "-"
    thr = f"{v.throughput.steps_per_s:,.0f}{' *' if v.batch_note else ''}" if v.throughput else "-"
    floor = f"{v.floor_ms:.4f}" if v.floor_ms is not None else "-"
    xf = f"{v.x_floor:.1f}" if v.x_floor is not None else "-"
    return [v.label, str(v.threads), step, ratio, thr, fmt_bytes(v.artifact_bytes), fmt_bytes(v.bytes_per_step),
            floor, xf, v.note]


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render(report) -> str:
    lines = [report.headline.text, ""] if report.headline is not None else []
    lines += _summary("model", report.model)
    if report.quality_note:
        lines.append(f"  {report.quality_note}")
    if report.baseline is not None:
        lines += _summary("baseline", report.baseline)
    elif report.baseline_is_model:
        lines.append("baseline: the model itself (uncompressed)")
    c = report.quality_change
    if c is not None:
        lines.append(f"  change of {c.metric} vs baseline: {c.absolute:+.4f} ({c.percent:+.2f}%)")
    bw = ", ".join(f"{b.gb_per_s:.1f} GB/s at {b.threads} thread(s)" for b in report.bandwidth)
    lines.append(f"memory bandwidth (copy, read+write): {bw}")
    header = ["variant", "thr", "step ms median [spread]", "speed-up vs best torch", "steps/s (batch)", "on disk",
              "weights/step",
              "stream ms", "x stream", "note"]
    lines += ["", *_grid(header, [_row(v) for v in report.variants])]
    notes = dict.fromkeys(f"* {v.label}: {v.batch_note}" for v in report.variants if v.batch_note and v.throughput)
    lines += list(notes)
    m, s = report.machine, report.settings
    mode = "QUICK mode (not a benchmark figure)" if s.quick else "full"
    lines += ["", f"{m.cpu_model}, {m.logical_cpus} CPUs, torch {m.torch_version}, onnxruntime "
                  f"{m.onnxruntime_version or 'not installed'}, load {m.load_average}, {m.date_utc}",
              f"{mode}: {s.steps} steps x {s.repeats} rounds after {s.warmup} warm-up steps; throughput at batch "
              f"{s.batch} x {s.seq_len} steps; 'speed-up vs best torch' = the fastest torch nn row's latency "
              "(default or oneDNN off, same threads) / the row's latency: > 1 = faster",
              "stream = weight bytes per step / copy bandwidth (DRAM): the time to read the weights once, a "
              "reference, not a lower bound; x stream < 1 means the weights are served from cache"]
    return "\n".join(lines)
