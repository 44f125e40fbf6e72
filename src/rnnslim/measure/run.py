"""`measure()`: size, MACs, quality, latency and throughput of a model and of the baselines a
user would otherwise pick, all in one process run on one machine (BENCHMARKING.md).

A model on a CUDA device is timed there (synchronised steps), also replayed from a CUDA
graph, against cuDNN's nn.LSTM/GRU eager and from a CUDA graph; the CPU-only baselines
(oneDNN off, ONNX Runtime) say so, and only the first thread count is used (the GPU's
kernels do not depend on it)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnslim.measure.bandwidth import Bandwidth, memory_bandwidth
from rnnslim.measure.baselines import baseline_variants, is_uncompressed
from rnnslim.measure.headline import make_headline
from rnnslim.measure.latency import time_batch, time_stream, torch_threads
from rnnslim.measure.machine import machine_info
from rnnslim.measure.macs import macs_per_step
from rnnslim.measure.quality import evaluate_quality
from rnnslim.measure.results import (
    LatencyStats,
    MeasureReport,
    MeasureSettings,
    ModelSummary,
    QualityChange,
    ThroughputStats,
    VariantResult,
)
from rnnslim.measure.size import size_stats
from rnnslim.measure.variants import (
    BASELINE_KINDS,
    TORCH_KINDS,
    Variant,
    VariantKind,
    graph_variant,
    torch_variant,
    unavailable,
    user_variant,
)
from rnnslim.measure.weight_bytes import module_bytes_per_step
from rnnslim.utils.device import model_device


def _name(model: nn.Module) -> str:
    meta = getattr(model, "task_meta", None) or {}
    return str(meta.get("name") or type(model).__name__)


def _summary(model, task, split, eval_fn, settings, artifact_path) -> ModelSummary:
    quality = evaluate_quality(model, task, split, eval_fn, max_steps=settings.eval_max_steps)
    return ModelSummary(name=_name(model), size=size_stats(model, artifact_path), macs=macs_per_step(model),
                        quality=quality, bytes_per_step=module_bytes_per_step(model))


def _quality_change(model: ModelSummary, baseline: ModelSummary | None) -> QualityChange | None:
    if baseline is None or model.quality is None or baseline.quality is None:
        return None
    metric = model.quality.primary_metric
    if metric not in baseline.quality.metrics:
        return None
    a, b = model.quality.metrics[metric], baseline.quality.metrics[metric]
    return QualityChange(metric=metric, model=a, baseline=b, absolute=a - b, percent=100 * (a - b) / b if b else 0.0)


def run_variant(v: Variant, threads: int, s: MeasureSettings, bw: Bandwidth) -> VariantResult:
    """Time one variant at one thread count; a baseline that fails is reported, the model's failure raised."""
    base = dict(kind=v.kind, label=v.label, threads=threads, artifact_bytes=v.artifact_bytes,
                bytes_per_step=v.bytes_per_step, note=v.note, batch_note=v.batch_note if v.batch else "")
    if v.status != "ok":
        return VariantResult(**base, status=v.status)
    try:
        with torch_threads(threads), torch.inference_mode(), (v.context() if v.context else contextlib.nullcontext()):
            lat = time_stream(v.stream(threads), s.steps, s.repeats, s.warmup) if v.stream else None
            thr = (time_batch(v.batch(threads, s.batch, s.seq_len), s.batch * s.seq_len, s.throughput_repeats)
                   if v.batch else None)
    except Exception as e:
        if v.kind is VariantKind.MODEL:
            raise
        return VariantResult(**base, status=f"failed: {type(e).__name__}: {e}")
    floor = bw.floor_ms(v.bytes_per_step) if v.bytes_per_step else None
    return VariantResult(
        **base,
        latency=LatencyStats(**lat, threads=threads) if lat else None,
        throughput=ThroughputStats(**thr, threads=threads, batch=s.batch, seq_len=s.seq_len) if thr else None,
        floor_ms=floor, x_floor=lat["median_ms"] / floor if (lat and floor) else None)


def _with_ratios(results: list[VariantResult]) -> list[VariantResult]:
    """Latency ratios per thread count against torch nn's default row and against the fastest
    torch row (default or oneDNN off): the honest reference is the best a torch user gets."""
    ref = {r.threads: r.latency.median_ms for r in results if r.kind is VariantKind.TORCH_DEFAULT and r.latency}
    best: dict[int, float] = {}
    for r in results:
        if r.kind in TORCH_KINDS and r.latency:
            best[r.threads] = min(best.get(r.threads, float("inf")), r.latency.median_ms)
    out = []
    for r in results:
        if r.latency and r.threads in ref:
            r = r.model_copy(update={"ratio_vs_torch_default": r.latency.median_ms / ref[r.threads]})
        if r.latency and r.threads in best:
            ratio = r.latency.median_ms / best[r.threads]
            speedup = 1 / ratio if ratio else None  # > 1: faster than the best torch row
            r = r.model_copy(update={"ratio_vs_best_torch": ratio, "speedup_vs_best_torch": speedup})
        out.append(r)
    return out


def integer_kernel_step(model: nn.Module, say: Callable[[str], None]) -> tuple[Callable[[Any], Any] | None, str]:
    """For a fully integer int8 model, (its streaming step in rnnslim's C kernel (how it is
    deployed), a note with the memory the kernel holds); (None, "") when the model is not fully
    integer or the kernel cannot be built."""
    from rnnslim.quantize.int8.kernel_eval import is_fully_integer, kernel_runner

    why: list[str] = []
    runner = kernel_runner(model, why)
    if runner is None:
        if is_fully_integer(model):
            say(f"integer C kernel unavailable ({why[0] if why else 'unsupported'}); timing the torch integer "
                "reference")
        return None, ""
    say(f"timing the fully integer model in the C kernel ({getattr(runner, 'variant', 'native')})")
    program = runner.program
    folded = program.layers[0].tx_table
    note = (f"C kernel; holds {program.resident_bytes() / 1e6:.2f} MB at run time"
            + (f" (incl. the folded embedding table, {folded.nbytes / 1e6:.2f} MB, built at load)"
               if folded is not None else "") + f"; {program.work_note()}")
    return runner.stream_step_fn(), note


def _own_variant(model: nn.Module, summary, step_fn, batch_fn, device, say) -> Variant:
    """The measured model's variant: the user's callables for their own module; for a
    SequenceModel torch's forward, with the C kernel's step for a fully integer int8 model on
    the CPU, and the user's step / batch callables, when given, in place of the defaults."""
    if not hasattr(model, "spec"):
        return user_variant(step_fn, batch_fn, summary.size.artifact_bytes, summary.bytes_per_step)
    kernel_note = ""
    if step_fn is None and device.type == "cpu":
        step_fn, kernel_note = integer_kernel_step(model, say)
    own = torch_variant(VariantKind.MODEL, model, summary.size.artifact_bytes, summary.bytes_per_step)
    mine = user_variant(step_fn, batch_fn, None, None)
    own.stream = mine.stream or own.stream
    own.batch = mine.batch or own.batch
    own.note = kernel_note or own.note
    if kernel_note and batch_fn is None:
        own.batch_note = ("its batch row runs torch's integer reference (the same integers, emulated in torch "
                          "tensors): the C kernel steps one stream at batch 1 and has no batch path")
    return own


def _baseline_variants(baseline: nn.Module | None, base_ref, workdir: Path, say) -> tuple[list[Variant], Any]:
    """(the baselines built from the uncompressed model, the ONNX export record); without an
    uncompressed model, every baseline kind marked unavailable with the reason."""
    if baseline is None:
        why = ("unavailable: the model is compressed (swapped-in, sparse, low-precision or unequal "
               "layers); give the uncompressed model (--baseline PATH, or baseline= in Python)")
        return [unavailable(k, why) for k in BASELINE_KINDS], None
    say("building baselines (torch nn, ONNX export, int8 quantization)")
    return baseline_variants(baseline, workdir, base_ref.size.artifact_bytes if base_ref else None)


def measure(model: nn.Module, task=None, split: str = "test", baseline: nn.Module | None = None,
            eval_fn: Callable[[nn.Module], dict] | None = None, threads: Sequence[int] = (1, 2), quick: bool = False,
            include_baselines: bool = True, artifact_path: str | Path | None = None, *,
            step_fn: Callable[[Any], Any] | None = None, batch_fn: Callable[[], Any] | None = None,
            baseline_artifact_path: str | Path | None = None, settings: MeasureSettings | None = None,
            log: Callable[[str], None] | None = None, quality_note: str | None = None) -> MeasureReport:
    """Measure `model` and, in the same run, the baselines built from the uncompressed model.

    model        a SequenceModel (also with compressed layers swapped in), or any nn.Module together
                 with `step_fn(state) -> state` (one streaming step at batch 1; state None at first),
                 optionally `batch_fn()` (one pass of batch x seq_len steps) and `eval_fn`
    task, split  `task.evaluate(model, split)` gives the metric (eval_fn(model) -> dict wins if given)
    baseline     the uncompressed SequenceModel the baselines are built from; default: the model
                 itself when it is uncompressed (plain float torch layers of one shape)
    threads      torch / ONNX Runtime intra-op thread counts, each measured separately
    quick        short runs for tests and demos (flagged in the report; not benchmark figures)
    artifact_path the model's saved directory/file, else it is saved to a temporary directory
    quality_note why there is no task (kept in the report, with how to add one, when the metric is left out)
    """
    t0 = time.perf_counter()
    say = log or (lambda msg: None)
    s = settings or (MeasureSettings.for_quick() if quick else MeasureSettings.full())
    threads = tuple(int(t) for t in threads)
    machine = machine_info()
    device = model_device(model)
    if device.type == "cuda" and len(threads) > 1:
        say(f"on {device} only the first thread count ({threads[0]}) is measured")
        threads = threads[:1]
    user_module = not hasattr(model, "spec")
    if user_module and step_fn is None:
        raise TypeError(f"{type(model).__name__} does not follow SequenceModel's contract; pass step_fn= "
                        "(and batch_fn=, eval_fn=) to measure it")
    if baseline is None and is_uncompressed(model):
        baseline = model
    baseline_is_model = baseline is model
    was_training = [(m, m.training) for m in {id(m): m for m in (model, baseline) if m is not None}.values()]
    for m, _ in was_training:
        m.eval()
    try:
        say("size, MACs and quality of the model")
        summary = _summary(model, task, split, eval_fn, s, artifact_path)
        base_summary = None
        if baseline is not None and not baseline_is_model:
            say("size, MACs and quality of the baseline")
            base_summary = _summary(baseline, task, split, eval_fn, s, baseline_artifact_path)
        base_ref = summary if baseline_is_model else base_summary
        own = _own_variant(model, summary, step_fn, batch_fn, device, say)
        with tempfile.TemporaryDirectory(prefix="rnnslim-measure-") as workdir:
            variants, export_record = [own], None
            if device.type == "cuda" and not user_module:
                variants.append(graph_variant(VariantKind.CUDA_GRAPH, model, summary.size.artifact_bytes,
                                              summary.bytes_per_step))
            if include_baselines:
                extra, export_record = _baseline_variants(baseline, base_ref, Path(workdir), say)
                variants += extra
            bandwidth = {t: memory_bandwidth(t, s.bandwidth_megabytes, s.bandwidth_repeats, device) for t in threads}
            results = []
            for t in threads:
                for v in variants:
                    say(f"timing {v.label} at {t} thread(s)")
                    results.append(run_variant(v, t, s, bandwidth[t]))
    finally:
        for m, flag in was_training:
            m.train(flag)
    if summary.quality is not None:
        quality_note = None
    elif quality_note is None:
        quality_note = "quality left out: no task was given; pass task= (or eval_fn=) to measure it"
    change, results = _quality_change(summary, base_summary), _with_ratios(results)
    return MeasureReport(model=summary, baseline=base_summary, baseline_is_model=baseline_is_model,
                         quality_change=change, variants=results,
                         headline=make_headline(summary, base_summary, baseline_is_model, results, change),
                         bandwidth=list(bandwidth.values()), onnx_export=export_record, quality_note=quality_note,
                         settings=s, machine=machine, seconds=time.perf_counter() - t0)
