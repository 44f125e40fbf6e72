"""The result of `measure()`: JSON for machines (`to_dict` / `from_dict`), a table for people.

One VariantResult per (variant, thread count): the model itself and each baseline, with
step latency (median of medians and spread), latency ratios to `torch nn (default)` and to
the fastest torch row at the same thread count (and its inverse, the speed-up), batch throughput, bytes on disk, weight bytes read per step, and the
time to stream the weights once at the measured bandwidth, and the latency as a multiple of it
(x_floor = latency / floor_ms; JSON names kept; shown as "x stream": a reference, not a lower bound).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rnnslim.measure.bandwidth import Bandwidth
from rnnslim.measure.machine import MachineInfo
from rnnslim.measure.macs import MacStats
from rnnslim.measure.quality import Quality
from rnnslim.measure.size import SizeStats
from rnnslim.measure.table import render
from rnnslim.measure.variants import VariantKind

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class MeasureSettings(BaseModel):
    """How long to measure. `full()` follows BENCHMARKING.md; `quick()` is for tests and demos only."""

    model_config = _FROZEN
    quick: bool = False
    steps: int = 200
    repeats: int = 5
    warmup: int = 50
    batch: int = 64
    seq_len: int = 128
    throughput_repeats: int = 3
    bandwidth_megabytes: int = 256
    bandwidth_repeats: int = 5
    eval_max_steps: int | None = None  # None: the whole split

    @classmethod
    def full(cls) -> MeasureSettings:
        return cls()

    @classmethod
    def for_quick(cls) -> MeasureSettings:
        return cls(quick=True, steps=30, repeats=3, warmup=5, batch=64, seq_len=16, throughput_repeats=1,
                   bandwidth_megabytes=32, bandwidth_repeats=3, eval_max_steps=2000)


class LatencyStats(BaseModel):
    model_config = _FROZEN
    median_ms: float
    spread_ms: list[float]  # [min, max] of the per-round medians
    medians_ms: list[float]
    threads: int
    steps: int
    repeats: int
    warmup: int


class ThroughputStats(BaseModel):
    model_config = _FROZEN
    steps_per_s: float
    spread_steps_per_s: list[float]
    seconds: float
    repeats: int
    threads: int
    batch: int
    seq_len: int


class VariantResult(BaseModel):
    model_config = _FROZEN
    kind: VariantKind
    label: str
    threads: int
    status: str = "ok"
    latency: LatencyStats | None = None
    throughput: ThroughputStats | None = None
    artifact_bytes: int | None = None
    bytes_per_step: int | None = None
    floor_ms: float | None = None
    x_floor: float | None = None  # latency / floor
    ratio_vs_torch_default: float | None = None  # latency / latency of torch nn (default), same threads
    ratio_vs_best_torch: float | None = None  # latency / the fastest torch nn row (default or oneDNN off)
    speedup_vs_best_torch: float | None = None  # 1 / ratio_vs_best_torch: > 1 = faster than the best torch row
    note: str = ""
    batch_note: str = ""  # what the batch throughput row ran, when not what `note` describes (the C kernel)


class ModelSummary(BaseModel):
    model_config = _FROZEN
    name: str
    size: SizeStats
    macs: MacStats
    quality: Quality | None = None
    bytes_per_step: int | None = None


class QualityChange(BaseModel):
    model_config = _FROZEN
    metric: str
    model: float
    baseline: float
    absolute: float  # model - baseline
    percent: float


class Headline(BaseModel):
    """The one line a reader wants first: how much smaller and faster than the best torch
    baseline, at what change of the metric (headline.py builds it)."""

    model_config = _FROZEN
    text: str
    smaller_x: float | None = None  # baseline artifact bytes / model artifact bytes (> 1 = smaller)
    faster_x: float | None = None  # best torch latency / model latency, same threads (> 1 = faster)
    threads: int | None = None
    reference: str | None = None  # the label of the fastest torch row
    metric: str | None = None
    metric_change_percent: float | None = None


class MeasureReport(BaseModel):
    model_config = _FROZEN
    format: Literal["rnnslim-measure"] = "rnnslim-measure"
    version: Literal[1] = 1
    model: ModelSummary
    baseline: ModelSummary | None = None  # None: no baseline, or the model is its own baseline
    baseline_is_model: bool
    quality_change: QualityChange | None = None
    variants: list[VariantResult]
    bandwidth: list[Bandwidth]
    onnx_export: dict | None = None
    quality_note: str | None = None  # why the metric is left out (model.quality None) and how to add it
    headline: Headline | None = None  # None in reports written before it existed
    settings: MeasureSettings
    machine: MachineInfo
    seconds: float

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict) -> MeasureReport:
        return cls.model_validate(data)

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    def variant(self, kind: VariantKind | str, threads: int) -> VariantResult:
        kind = VariantKind(kind)
        for v in self.variants:
            if v.kind is kind and v.threads == threads:
                return v
        raise KeyError(f"no {kind.value} result at {threads} thread(s)")

    def table(self) -> str:
        return render(self)

    def __str__(self) -> str:
        return self.table()
