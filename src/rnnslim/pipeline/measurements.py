"""What the pipeline measures for the input model and after every stage (one report row).

- task metrics on the valid and test splits (task.evaluate; numbers only)
- parameters and non-zero parameters (unique tensors: tied weights count once)
- artifact_bytes: real bytes on disk of the saved model directory
- optionally streaming latency (rnnslim.measure.streaming_latency), else null
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import torch

from rnnslim.io.format import artifact_bytes
from rnnslim.pipeline.fingerprint import jsonable
from rnnslim.pipeline.recipe import MeasureSection

EVAL_SPLITS = ("valid", "test")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters).

    rnnslim.measure.size.count_parameters defines them (stored tensors, tied ones once;
    integer weights of quantized layers count, masks/scales/zero points do not); until
    that module is installed, model.parameters() (shared tensors once) stand in.
    """
    try:
        from rnnslim.measure.size import count_parameters as stored_count
    except ModuleNotFoundError as e:
        if e.name not in ("rnnslim.measure", "rnnslim.measure.size"):
            raise
    else:
        params, nonzeros, _aux = stored_count(model)
        return int(params), int(nonzeros)
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()).item())
    return total, nonzero


def streaming_latency_or_none(model: torch.nn.Module, cfg: MeasureSection) -> dict | None:
    """rnnslim.measure.streaming_latency as a JSON dict, or None when it is not installed."""
    streaming_latency = None
    for mod in ("rnnslim.measure", "rnnslim.measure.latency"):
        try:
            streaming_latency = getattr(importlib.import_module(mod), "streaming_latency", None)
        except ModuleNotFoundError as e:  # not written yet
            if e.name not in ("rnnslim.measure", mod):
                raise  # a broken dependency inside rnnslim.measure is a real error
        if streaming_latency is not None:
            break
    if streaming_latency is None:
        return None

    result = streaming_latency(model, threads=cfg.threads, steps=cfg.steps, repeats=cfg.repeats)
    out = jsonable(result)
    return out if isinstance(out, dict) else {"value": out}


def latency_ms(latency: dict | None) -> float | None:
    """The median step latency in milliseconds from a latency record, if it names one."""
    if not latency:
        return None
    for key, scale in (("median_ms", 1.0), ("ms", 1.0), ("median_us", 1e-3), ("us", 1e-3),
                       ("median_s", 1e3), ("seconds", 1e3), ("median", 1e3)):
        v = latency.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v) * scale
    return None


def numeric(metrics: dict) -> dict:
    return {k: v for k, v in jsonable(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def measure_model(model: torch.nn.Module, task: Any, model_dir: Path, cfg: MeasureSection) -> dict:
    """One row of measurements for a model already saved in `model_dir`."""
    t0 = time.perf_counter()
    metrics = {split: numeric(task.evaluate(model, split, max_steps=cfg.eval_max_steps)) for split in EVAL_SPLITS}
    params, nonzeros = count_parameters(model)
    t1 = time.perf_counter()
    latency = streaming_latency_or_none(model, cfg) if cfg.latency else None
    return {
        "metrics": metrics,
        "params": params,
        "nonzeros": nonzeros,
        "artifact_bytes": artifact_bytes(model_dir),
        "latency": latency,
        "latency_ms": latency_ms(latency),
        "timings": {"evaluate_s": t1 - t0, "latency_s": time.perf_counter() - t1},
    }
