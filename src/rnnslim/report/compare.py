"""Each row side by side with the input model (row 0): metric change, size and latency ratios."""

from __future__ import annotations


def _delta(value: float | None, base: float | None) -> dict:
    if value is None or base is None:
        return {"value": value, "delta": None, "delta_pct": None}
    pct = 100.0 * (value - base) / abs(base) if base else None
    return {"value": value, "delta": value - base, "delta_pct": pct}


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def compare_rows(rows: list[dict], metric: str) -> list[dict]:
    """For rows (dicts as in report.json) add `compare`:
    {valid/test: {value, delta, delta_pct}, bytes_ratio, nonzeros_ratio, latency_ratio};
    ratios are this row / the input row (0.5 = half the bytes, half the time)."""
    base = rows[0]["measurements"]
    out = []
    for row in rows:
        m = row["measurements"]
        cmp = {split: _delta(m.get("metrics", {}).get(split, {}).get(metric),
                             base.get("metrics", {}).get(split, {}).get(metric)) for split in ("valid", "test")}
        cmp["bytes_ratio"] = _ratio(m.get("artifact_bytes"), base.get("artifact_bytes"))
        cmp["nonzeros_ratio"] = _ratio(m.get("nonzeros"), base.get("nonzeros"))
        cmp["latency_ratio"] = _ratio(m.get("latency_ms"), base.get("latency_ms"))
        out.append({**row, "compare": cmp})
    return out
