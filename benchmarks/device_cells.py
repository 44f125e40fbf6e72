"""The measured cells of benchmarks/your_model_to_device.py, one function per column.

Each function takes a SequenceModel (captured or imported) or its integer int8 copy and
returns a JSON-able dict. Failures are not caught here: the caller turns an exception into a
one-line cell (`cell_error`), never a traceback and never a number.

- parity: max |y_rnnslim - y_user| / max |y_user| on a held-out batch in the user's layout;
- integer int8: quantize_int8_(copy, Int8Config(mode=INTEGER), calibration) -> IntegerRunner;
- C export: export_model(q, "c", out) (its own bit-exact host check, portable C), then the
  same export built and run for the host (-O3 -march=native), the Cortex-M4 (qemu-system-arm
  mps2-an386) and AArch64 (qemu-aarch64, NEON) with rnnslim.export.targets.target_check, each
  compared hash for hash with IntegerRunner on random input streams;
- Cortex-M4 flash / RAM: arm-none-eabi-size of the model object (text + data = flash) and the
  manifest's const (flash) and scratch + state (+ the whole-window workspace) bytes (RAM);
- latency: the C kernel (IntegerRunner, kernel.c, the same code as the export) against ONNX
  Runtime int8 of the same model (two int8 graphs for streaming models; the faster is the
  headline), 1 thread, in the same process, twice in alternation.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import numpy as np
import torch

from rnnslim.export.c_check import random_streams
from rnnslim.export.formats import export_model
from rnnslim.export.onnx import OrtStepRunner, example_inputs, ort_session
from rnnslim.export.targets import TARGETS, model_sizes, section_sizes, target_check, toolchain_available
from rnnslim.measure import streaming_latency
from rnnslim.measure.latency import time_stream
from rnnslim.quantize.int8 import Int8Config, Int8Mode, quantize_int8_
from rnnslim.quantize.int8.runner import IntegerRunner

CHECK_TARGETS = {"host": (100, 24), "cortex-m4": (10, 24), "aarch64": (20, 24)}  # target -> (streams, steps)
WINDOW = 64  # whole-window latency of a bidirectional model: characters per window


def cell_error(e: BaseException) -> str:
    """One line: a ValueError (CaptureError included) is rnnslim refusing with a reason."""
    text = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, ValueError):
        return f"refused: {text}"
    return f"error: {type(e).__name__}: {text}"


def rel_max_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.detach().double(), ref.detach().double()
    if y.shape != ref.shape:
        raise ValueError(f"output shapes differ: rnnslim {tuple(y.shape)} vs the user's {tuple(ref.shape)}")
    return float((y - ref).abs().max() / ref.abs().max())


def integer_copy(model, calibration: list[torch.Tensor]):
    """A fully integer int8 copy of `model` (calibrated on time-major batches) and its runner."""
    q = copy.deepcopy(model).eval()
    quantize_int8_(q, Int8Config(mode=Int8Mode.INTEGER), calibration=calibration)
    return q, IntegerRunner(q)


def _target_row(target: str, runner, out: Path, facts: dict, timeout: float) -> dict:
    reason = toolchain_available(target)
    if reason:
        return {"skipped": reason}
    n, steps = CHECK_TARGETS[target]
    streams = random_streams(facts["vocab"], n, steps, seed=1, features=facts.get("features", 0))
    timing: dict = {}
    res = target_check(target, runner, out, streams, timeout=timeout, timing=timing)
    row = {"bit_exact": res.ok, "streams": res.streams, "steps": res.steps, "simd": res.simd,
           "mismatched_streams": res.mismatches[:10], "image": section_sizes(timing["elf"], TARGETS[target].size),
           "run_wall_s": round(timing["wall_s"], 3)}
    if target == "cortex-m4":
        row["model_object"] = model_sizes(target, out)
    return row


def c_export_cells(q, runner, work: Path, name: str, timeout: float = 600) -> dict:
    """Export to C (host-checked by export_model), then bit-exactness on each target."""
    out = work / f"{name}_c"
    facts = export_model(q, "c", out, name=name)
    manifest = {k: facts.get(k) for k in ("const_bytes", "scratch_bytes", "state_bytes", "ram_bytes", "vocab",
                                          "features", "bidirectional", "input_window", "input_padding",
                                          "readout", "workspace_fixed_bytes",
                                          "workspace_bytes_per_step", "folded_embedding", "tile_sparse")}
    rows = {"export_check (portable C, -O2)": facts.get("check")}
    for target in CHECK_TARGETS:
        try:
            rows[target] = _target_row(target, runner, out, facts, timeout)
        except subprocess.TimeoutExpired:
            rows[target] = {"error": f"timed out after {timeout} s"}
        except Exception as e:  # a build failure (e.g. FLASH overflow) is a cell, not a crash
            rows[target] = {"error": cell_error(e)}
    return {"manifest": manifest, "targets": rows}


def flash_ram(c_cells: dict) -> dict:
    """Cortex-M4 flash and RAM of the model: the object's sections and the manifest's bytes."""
    m = c_cells["manifest"]
    ram = m["ram_bytes"]
    whole = m.get("bidirectional") or (m.get("input_window") or 1) > 1 or (m.get("input_padding") or 0) > 0
    if whole:  # NAME_run's caller-provided workspace for one window (no streaming step)
        ram += m["workspace_fixed_bytes"] + WINDOW * m["workspace_bytes_per_step"]
    obj = c_cells["targets"].get("cortex-m4", {}).get("model_object")
    return {"manifest_flash_bytes": m["const_bytes"], "manifest_ram_bytes": ram,
            "ram_note": f"scratch + state{' + workspace of one ' + str(WINDOW) + '-step window' if whole else ''}",
            "m4_object_flash_bytes": obj["text"] + obj["data"] if obj else None,
            "m4_object_static_ram_bytes": obj["data"] + obj["bss"] if obj else None}


# --- latency ---------------------------------------------------------------------------------------
def _ort_step_fn(path: Path):
    """step_fn(state) -> state over an exported step graph, 256 random inputs cycled."""
    r = OrtStepRunner(path, threads=1)
    xs = [example_inputs(r.layout, seed=i)[0] for i in range(256)]
    box = {"i": 0}

    def step(state):
        state = r.init_state(1) if state is None else state
        box["i"] += 1
        return r.step(xs[box["i"] % 256], state)[1]

    return step


def _band(a: dict, b: dict) -> list[float]:
    """The range of b / a (C's speed-up when a is C's timing) the two rounds' spreads allow."""
    return [b["spread_ms"][0] / a["spread_ms"][1], b["spread_ms"][1] / a["spread_ms"][0]]


def _alternate(fns: dict, rounds: int = 2) -> dict:
    """Each of `fns` ("c_kernel" and the ORT baselines) timed `rounds` times in alternation, each
    round a median of 5 repeats. The headline ratio is against the fastest ORT baseline."""
    timed = [{name: fn() for name, fn in fns.items()} for _ in range(rounds)]
    baselines = {}
    for name in fns:
        if name == "c_kernel":
            continue
        bands = [_band(r["c_kernel"], r[name]) for r in timed]
        lo, hi = min(b[0] for b in bands), max(b[1] for b in bands)
        baselines[name] = {"median_ms": float(np.median([r[name]["median_ms"] for r in timed])),
                           "speedup_c_over": float(np.median([r[name]["median_ms"] / r["c_kernel"]["median_ms"]
                                                              for r in timed])),
                           "noise_band": [lo, hi], "equal_within_noise": lo <= 1.0 <= hi}
    best = min(baselines, key=lambda k: baselines[k]["median_ms"])
    return {"rounds": timed, "c_kernel_median_ms": float(np.median([r["c_kernel"]["median_ms"] for r in timed])),
            "baselines": baselines, "best_ort": best, "speedup_c_over_ort": baselines[best]["speedup_c_over"],
            "noise_band": baselines[best]["noise_band"], "equal_within_noise": baselines[best]["equal_within_noise"],
            "load_avg": list(os.getloadavg())}


def _fused_dynamic_int8(model, work: Path, name: str) -> tuple[Path, dict]:
    """ORT's own int8 of the fused step graph: export_model(model, "onnx") (one LSTM / GRU node per
    layer) + quantize_dynamic (weights QInt8, reduce_range=True): LSTM -> DynamicQuantizeLSTM,
    a GRU node stays fp32 (ORT has no int8 GRU), the decoder MatMul int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rnnslim.export.onnx import _write_layout, read_layout

    fp32, int8 = work / f"{name}_fused.onnx", work / f"{name}_fused_int8.onnx"
    export_model(model, "onnx", fp32)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, reduce_range=True)
    return int8, _write_layout(int8, read_layout(fp32))


def step_latency(model, runner, work: Path, name: str) -> dict:
    """Streaming step at batch 1, state carried: IntegerRunner step vs two ORT int8 graphs of the
    same float model: rnnslim's onnx-int8 export (unfused recurrence, every MatMul int8, 7-bit
    weights) and ORT's quantize_dynamic of the fused graph; the faster one is the headline."""
    unfused = work / f"{name}_int8.onnx"
    facts = export_model(model, "onnx-int8", unfused)
    fused, fused_ops = _fused_dynamic_int8(model, work, name)
    lat = _alternate({"c_kernel": lambda: streaming_latency(step_fn=runner.stream_step_fn(), threads=1),
                      "ort_int8_unfused": lambda: streaming_latency(step_fn=_ort_step_fn(unfused), threads=1),
                      "ort_dynamic_int8_fused": lambda: streaming_latency(step_fn=_ort_step_fn(fused), threads=1)})
    gru_fp32 = "GRU" in fused_ops
    return {"kind": "step", "ort": {
        "ort_int8_unfused": "export_model(float model, 'onnx-int8'): unfused step graph, ORT quantize_dynamic "
                            "MatMul int8 per column, reduce_range=True (7-bit weights)",
        "ort_dynamic_int8_fused": "export_model(float model, 'onnx') + ORT quantize_dynamic (QInt8, reduce_range="
                                  "True)" + (": the GRU node stays fp32 (ORT has no int8 GRU)" if gru_fp32 else
                                             ": LSTM -> DynamicQuantizeLSTM")},
        "ort_bytes": {"ort_int8_unfused": facts["bytes"], "ort_dynamic_int8_fused": fused.stat().st_size},
        "fused_op_types": fused_ops, "fused_gru_stays_fp32": gru_fp32,
        "ort_int8_max_abs_diff": facts["parity_max_abs_diff"], **lat}


def window_latency(user_module, runner, ids: torch.Tensor, work: Path, name: str) -> dict:
    """One whole window (ids (T,), or features (T, F) of a batch-first module) of a model without a
    streaming step (bidirectional, a CRNN's windowed input): IntegerRunner.run_sequence vs ORT int8
    of the user's own module exported whole-window (torch.onnx.export + quantize_dynamic,
    reduce_range=True); ORT's quantizer leaves the GRU node fp32 (no int8 GRU), only the Linear
    (and Conv) become int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, int8 = work / f"{name}_window.onnx", work / f"{name}_window_int8.onnx"
    x = ids[None] if ids.dim() == 2 else ids.reshape(1, -1)  # (1, T, F) features or (1, T) ids
    with torch.no_grad():
        torch.onnx.export(copy.deepcopy(user_module).eval(), (x,), str(fp32), input_names=["x"], output_names=["y"],
                          dynamo=False, opset_version=17)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, reduce_range=True)
    sess = ort_session(int8, threads=1)
    feed = {"x": x.numpy()}
    ops = sorted({n.op_type for n in __import__("onnx").load(str(int8)).graph.node})
    c_fn = lambda: time_stream(lambda: runner.run_sequence(ids), steps=50, repeats=5, warmup=5)  # noqa: E731
    o_fn = lambda: time_stream(lambda: sess.run(None, feed), steps=50, repeats=5, warmup=5)  # noqa: E731
    with torch.inference_mode():
        lat = _alternate({"c_kernel": c_fn, "ort_dynamic_int8_window": o_fn})
    return {"kind": f"window of {ids.shape[0]} steps", "ort": "the user's module, torch.onnx.export whole window, "
            "ORT quantize_dynamic reduce_range=True: the GRU node stays fp32 (ORT has no int8 GRU), Linear int8",
            "ort_op_types": ops, "ort_bytes": int8.stat().st_size, **lat}
