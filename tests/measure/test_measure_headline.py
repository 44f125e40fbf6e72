"""The measure headline ("N x smaller, M x faster at +X %") and the speed-up column, on made-up
timings (no clock involved), plus an old report's JSON still loading."""

from __future__ import annotations

import pytest

from rnnslim.measure.bandwidth import Bandwidth
from rnnslim.measure.headline import make_headline
from rnnslim.measure.machine import MachineInfo
from rnnslim.measure.macs import MacStats
from rnnslim.measure.quality import Quality
from rnnslim.measure.results import (
    LatencyStats,
    MeasureReport,
    MeasureSettings,
    ModelSummary,
    QualityChange,
    ThroughputStats,
    VariantResult,
)
from rnnslim.measure.size import SizeStats
from rnnslim.measure.variants import VariantKind

KERNEL_BATCH = "its batch row runs torch's integer reference"


def _summary(name: str, nbytes: int, loss: float) -> ModelSummary:
    size = SizeStats(parameters=1000, nonzero_parameters=1000, aux_elements=0, artifact_bytes=nbytes, artifact="x",
                     bits_per_parameter=8 * nbytes / 1000)
    q = Quality(source="task:charlm", split="test", metrics={"loss_nats": loss}, primary_metric="loss_nats",
                higher_is_better=False, seconds=0.1)
    return ModelSummary(name=name, size=size, macs=MacStats.of([]), quality=q)


def _row(kind: VariantKind, label: str, ms: float, threads: int = 1, nbytes: int = 4000, batch_note: str = "",
         status: str = "ok") -> VariantResult:
    if status != "ok":
        return VariantResult(kind=kind, label=label, threads=threads, status=status)
    lat = LatencyStats(median_ms=ms, spread_ms=[ms, ms], medians_ms=[ms], threads=threads, steps=1, repeats=1, warmup=0)
    thr = ThroughputStats(steps_per_s=1000 / ms, spread_steps_per_s=[1, 1], seconds=1, repeats=1, threads=threads,
                          batch=4, seq_len=4)
    return VariantResult(kind=kind, label=label, threads=threads, latency=lat, throughput=thr, artifact_bytes=nbytes,
                         ratio_vs_best_torch=ms / 0.21, speedup_vs_best_torch=0.21 / ms, batch_note=batch_note)


def _rows(model_ms: float = 0.1) -> list[VariantResult]:
    return [_row(VariantKind.MODEL, "model", model_ms, nbytes=1000, batch_note=KERNEL_BATCH),
            _row(VariantKind.TORCH_DEFAULT, "torch nn (default)", 0.3),
            _row(VariantKind.TORCH_NO_ONEDNN, "torch nn (oneDNN off)", 0.21),
            _row(VariantKind.MODEL, "model", 0.05, threads=2, nbytes=1000),
            _row(VariantKind.TORCH_DEFAULT, "torch nn (default)", 0.06, threads=2)]


def _change(model: float, base: float) -> QualityChange:
    return QualityChange(metric="loss_nats", model=model, baseline=base, absolute=model - base,
                         percent=100 * (model - base) / base)


def test_headline_says_smaller_faster_and_the_metric_change_against_the_fastest_torch_row():
    h = make_headline(_summary("charlstm", 1000, 1.006), _summary("dense", 3900, 1.0), False, _rows(),
                      _change(1.006, 1.0))
    assert h.smaller_x == pytest.approx(4.0) and h.faster_x == pytest.approx(2.1)  # 4000 B torch row, 0.21 / 0.1 ms
    assert h.reference == "torch nn (oneDNN off)" and h.threads == 1
    assert h.text == ("charlstm: 4.0x smaller, 2.1x faster per step vs the best torch baseline "
                      "(torch nn (oneDNN off), fp32, 1 thread), loss_nats +0.60 %")


def test_a_slower_or_larger_model_is_said_the_other_way_round():
    rows = _rows(model_ms=0.42)
    rows[0] = _row(VariantKind.MODEL, "model", 0.42, nbytes=8000)
    h = make_headline(_summary("m", 8000, 1.2), None, False, rows, _change(1.2, 1.0))
    assert h.faster_x == pytest.approx(0.5) and "2.0x larger, 2.0x slower per step" in h.text
    assert h.text.endswith("loss_nats +20.0 %")


def test_an_uncompressed_model_is_about_the_same_size_and_speed():
    rows = _rows(model_ms=0.205)
    rows[0] = _row(VariantKind.MODEL, "model", 0.205, nbytes=4000)
    h = make_headline(_summary("dense", 4000, 1.0), None, True, rows, None)
    assert h.text.startswith("dense: about the same size, about as fast per step vs the best torch baseline")
    assert h.text.endswith("the model is its own baseline (uncompressed)")


def test_without_baselines_the_headline_says_what_is_missing():
    rows = [_row(VariantKind.MODEL, "model", 0.1),
            _row(VariantKind.TORCH_DEFAULT, "torch nn (default)", 0, status="unavailable: compressed")]
    h = make_headline(_summary("m", 1000, 1.0), None, False, rows, None)
    assert h.faster_x is None and h.smaller_x is None and "--baseline PATH" in h.text


def _report(rows: list[VariantResult], headline=True) -> MeasureReport:
    model, base = _summary("charlstm", 1000, 1.006), _summary("dense", 4000, 1.0)
    machine = MachineInfo(cpu_model="cpu", logical_cpus=2, physical_cores=1, torch_version="t",
                          torch_default_threads=1, onednn_available=True, onnxruntime_version=None, onnx_version=None,
                          python_version="3", platform="p", date_utc="d", load_average=None, git_commit=None)
    change = _change(1.006, 1.0)
    return MeasureReport(model=model, baseline=base, baseline_is_model=False, quality_change=change, variants=rows,
                         bandwidth=[Bandwidth(threads=1, bytes_per_s=1e10, copy_megabytes=1, repeats=1)],
                         settings=MeasureSettings.for_quick(), machine=machine, seconds=1.0,
                         headline=make_headline(model, base, False, rows, change) if headline else None)


def test_table_starts_with_the_headline_shows_speedups_and_explains_the_kernel_batch_row():
    report = _report(_rows())
    lines = report.table().splitlines()
    assert lines[0] == report.headline.text
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    col = lines[header].index("speed-up vs best torch")
    rows = lines[header + 2: header + 7]
    assert [r[col:].split()[0] for r in rows] == ["2.10x", "0.70x", "1.00x", "4.20x", "3.50x"]  # > 1 = faster
    assert "10,000 *" in rows[0] and "*" not in rows[3]  # marked: that batch pass is not the C kernel
    footnotes = [line for line in lines if line.startswith("* ")]
    assert footnotes == [f"* model: {KERNEL_BATCH}"]


def test_an_old_report_without_the_new_fields_still_loads_and_renders():
    data = _report(_rows(), headline=False).to_dict()
    for v in data["variants"]:
        del v["speedup_vs_best_torch"], v["batch_note"]
    del data["headline"]
    old = MeasureReport.from_dict(data)
    assert old.headline is None
    text = old.table()
    assert text.startswith("model: charlstm") and "2.10x" in text  # the speed-up from ratio_vs_best_torch
