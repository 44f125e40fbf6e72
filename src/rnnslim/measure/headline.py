"""The headline of a measurement: one line that says what the numbers below add up to.

    charlstm-512x2: 3.9x smaller, 2.1x faster per step vs the best torch baseline
    (torch nn (oneDNN off), fp32, 1 thread), loss_nats +0.62 %

Both factors read "bigger is better": size = the baseline's bytes on disk / the model's,
speed = the fastest torch row's step latency / the model's, at the first thread count
measured (the table shows every thread count). The torch rows run the uncompressed model in
float32, so "the best torch baseline" is what a PyTorch user gets without rnnslim. A factor
below 1 is said the other way round ("1.5x larger", "1.2x slower"), never hidden; one within
5 % of 1 is "about the same".
"""

from __future__ import annotations

from rnnslim.measure.results import Headline, ModelSummary, QualityChange, VariantResult
from rnnslim.measure.variants import TORCH_KINDS, VariantKind


SAME = 1.05  # factors within 5 % of 1 are "about the same": below the noise of a quick run


def _factor(x: float, better: str, worse: str, same: str) -> str:
    if 1 / SAME < x < SAME:
        return same
    return f"{x:.1f}x {better}" if x > 1 else f"{1 / x:.1f}x {worse}"


def _percent(p: float) -> str:
    return f"{p:+.2f} %" if abs(p) < 1 else f"{p:+.1f} %"


def _best_torch(variants: list[VariantResult], threads: int) -> VariantResult | None:
    rows = [v for v in variants if v.kind in TORCH_KINDS and v.threads == threads and v.latency is not None]
    return min(rows, key=lambda v: v.latency.median_ms, default=None)


def make_headline(model: ModelSummary, baseline: ModelSummary | None, baseline_is_model: bool,
                  variants: list[VariantResult], change: QualityChange | None) -> Headline:
    """The headline of a report's parts (see the module docstring)."""
    own = next((v for v in variants if v.kind is VariantKind.MODEL and v.latency is not None), None)
    ref = _best_torch(variants, own.threads) if own is not None else None
    base_bytes = (ref.artifact_bytes if ref is not None and ref.artifact_bytes else
                  baseline.size.artifact_bytes if baseline is not None else
                  model.size.artifact_bytes if baseline_is_model else None)
    smaller = base_bytes / model.size.artifact_bytes if base_bytes and model.size.artifact_bytes else None
    faster = ref.latency.median_ms / own.latency.median_ms if ref is not None and own.latency.median_ms > 0 else None
    parts = []
    if smaller is not None:
        parts.append(_factor(smaller, "smaller", "larger", "about the same size"))
    if faster is not None:
        parts.append(_factor(faster, "faster per step", "slower per step", "about as fast per step"))
    if parts and ref is not None:
        thread_word = "thread" if ref.threads == 1 else "threads"
        said = f"{', '.join(parts)} vs the best torch baseline ({ref.label}, fp32, {ref.threads} {thread_word})"
    elif parts:
        said = f"{', '.join(parts)} vs the baseline model on disk; no torch baseline was timed"
    else:
        said = "no baseline to compare with (give the uncompressed model: --baseline PATH, or baseline=)"
    if change is not None:
        said += f", {change.metric} {_percent(change.percent)}"
    elif baseline_is_model:
        said += ", the model is its own baseline (uncompressed)"
    elif model.quality is None:
        said += ", metric not measured"
    return Headline(text=f"{model.name}: {said}", smaller_x=smaller, faster_x=faster,
                    threads=ref.threads if ref is not None else None, reference=ref.label if ref is not None else None,
                    metric=change.metric if change is not None else None,
                    metric_change_percent=change.percent if change is not None else None)
