"""Quantization of the reference char-LSTM/GRU: test loss, artifact bytes, streaming latency.

    .venv/bin/python benchmarks/quantize_bench.py --model charlstm-512x2 [--chars 0] [--no-latency]

Rows: fp32, bf16, int8 dynamic / static / fully integer (rnnslim.quantize.int8), int4
group-wise weight-only, int2 (asymmetric, MSE-clipped, group-wise), k-means 16 clusters
(lzma-coded indices), mixed precision under a byte budget; and, as baselines measured in
the same run on the uncompressed model: PyTorch's deprecated dynamic int8
(torch.ao.quantization.quantize_dynamic), ONNX Runtime fp32 and ONNX Runtime dynamic int8
(quality over the same test stream, latency from rnnslim.measure.measure).

Quality: the test split as one stream at batch 1 (BENCHMARKING.md). Size: the saved
artifact's bytes on disk. Latency: streaming step at batch 1, state carried, median of 5 x
200 steps, 1 thread; the fully integer row runs in rnnslim's C kernel (IntegerRunner).
Writes benchmarks/results/quantize_<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.measure import measure, streaming_latency  # noqa: E402
from rnnslim.quantize.api import HalfPrecision, KMeans, WeightOnly, quantize_  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.quantize.mixed import MixedPrecision, apply_plan_, plan_mixed_precision  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask, stream_nll  # noqa: E402

WEIGHT_VARIANTS = [
    ("bf16", HalfPrecision(dtype="bf16")),
    ("int4 weight-only g64", WeightOnly(bits=4, group_size=64, clip="mse")),
    ("int2 weight-only g64 (asym, mse clip)", WeightOnly(bits=2, group_size=64, symmetric=False, clip="mse")),
    ("k-means 16 clusters (+lzma)", KMeans(clusters=16, entropy_coding=True)),
]


def nll_of_logits(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    nats = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="mean").item()
    return {"loss_nats": nats, "bits_per_char": nats / math.log(2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--chars", type=int, default=0, help="evaluate the first N test characters (0: all)")
    ap.add_argument("--budget-ratio", type=float, default=0.10, help="mixed precision: bytes / fp32 bytes")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    d = task.split("test")
    if args.chars:
        d = d[: args.chars + 1]
    tmp = Path(tempfile.mkdtemp(prefix="qbench_"))
    calib = [b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)]
    rows: list[dict] = []

    def add(name: str, model, kind: str, quality: dict, size: int, latency: dict | None, **extra) -> None:
        row = {"variant": name, "kind": kind, "test_loss_nats": quality["loss_nats"],
               "bits_per_char": quality["bits_per_char"], "artifact_bytes": size, "latency": latency, **extra}
        rows.append(row)
        lat = f"{latency['median_ms']:.3f} ms" if latency else "-"
        print(f"{name:40s} test {row['test_loss_nats']:.4f}  {size:>11,} B  {lat}", flush=True)

    def lat(model=None, step_fn=None):
        if args.no_latency:
            return None
        return streaming_latency(model, threads=1, step_fn=step_fn) if step_fn else streaming_latency(model, threads=1)

    def saved_size(model, name: str) -> int:
        save_model(model, tmp / name)
        return artifact_bytes(tmp / name)

    # the uncompressed model and the baselines a user would otherwise pick, measured in this run
    report = measure(base, task=None, threads=(1,), include_baselines=not args.no_latency, quick=args.no_latency,
                     artifact_path=MODELS / f"{args.model}.json")
    base_q = stream_nll(base, d)
    add("fp32 (uncompressed)", base, "rnnslim", base_q, artifact_bytes(MODELS / f"{args.model}.json"), lat(base))

    for name, cfg in WEIGHT_VARIANTS:
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        quantize_(m, cfg)
        add(name, m, "rnnslim", stream_nll(m, d), saved_size(m, name.split()[0]), lat(m),
            quantize_seconds=round(time.perf_counter() - t0, 2))

    m = copy.deepcopy(base)
    plan = plan_mixed_precision(m, task, MixedPrecision(bits=(8, 4, 3, 2), group_size=64, clip="mse",
                                                        budget_ratio=args.budget_ratio))
    apply_plan_(m, plan)
    add(f"mixed precision {{8,4,3,2}} bits, budget {args.budget_ratio:.0%}", m, "rnnslim", stream_nll(m, d),
        saved_size(m, "mixed"), lat(m), plan=plan.as_dict())

    for mode in ("dynamic", "static", "integer"):
        m = copy.deepcopy(base)
        quantize_int8_(m, Int8Config(mode=mode), calibration=None if mode == "dynamic" else calib)
        size = saved_size(m, f"int8-{mode}")
        if mode == "integer":
            runner = IntegerRunner(m)
            logits, _ = runner.run(d[:-1])
            quality = nll_of_logits(logits, d[1:])
            add("int8 fully integer (C kernel)", m, "rnnslim", quality, size, lat(step_fn=runner.stream_step_fn()),
                kernel_variant=getattr(runner, "variant", None))
        else:
            add(f"int8 {mode}", m, "rnnslim", stream_nll(m, d), size, lat(m))

    # baseline: PyTorch's deprecated dynamic int8 LSTM/GRU + Linear (torch.ao), same test stream
    try:
        from rnnslim.measure.baselines import TorchReference

        ref = TorchReference(base).eval()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qref = torch.ao.quantization.quantize_dynamic(ref, {torch.nn.LSTM, torch.nn.GRU, torch.nn.Linear},
                                                          dtype=torch.qint8)
        buf = io.BytesIO()
        torch.save(qref.state_dict(), buf)
        add("baseline: torch.ao dynamic int8 (deprecated)", qref, "baseline", stream_nll(qref, d), len(buf.getvalue()),
            lat(qref), note="size = torch.save(state_dict) bytes")
    except Exception as e:  # the deprecated path may be gone in a later torch
        rows.append({"variant": "baseline: torch.ao dynamic int8 (deprecated)", "kind": "baseline", "error": str(e)})
        print(f"torch.ao baseline failed: {e}")

    # baselines: ONNX Runtime fp32 / dynamic int8 of the uncompressed model, same test stream
    try:
        import numpy as np

        from rnnslim.export.onnx import (
            OrtStepRunner,
            export_step_onnx,
            quantize_dynamic_int8,
        )

        export_step_onnx(base, tmp / "fp32.onnx")
        quantize_dynamic_int8(tmp / "fp32.onnx", tmp / "int8.onnx")
        for name, path in (("baseline: ONNX Runtime fp32", tmp / "fp32.onnx"),
                           ("baseline: ONNX Runtime dynamic int8", tmp / "int8.onnx")):
            r = OrtStepRunner(path, threads=1)
            x = d[:-1].numpy().reshape(-1, 1)
            state, outs = r.init_state(1), []
            for t in range(0, len(x), 4096):
                y, state = r.step(x[t : t + 4096], state)
                outs.append(torch.from_numpy(np.asarray(y)).reshape(-1, y.shape[-1]))
            kind = "ort_fp32" if "fp32" in name else "ort_int8"
            v = report.variant(kind, 1) if not args.no_latency else None
            latency = ({"median_ms": v.latency.median_ms, "spread_ms": list(v.latency.spread_ms)}
                       if v is not None and getattr(v, "latency", None) else None)
            add(name, None, "baseline", nll_of_logits(torch.cat(outs), d[1:]), path.stat().st_size, latency)
    except Exception as e:
        print(f"ONNX Runtime baselines failed: {e}")
        rows.append({"variant": "baseline: ONNX Runtime", "kind": "baseline", "error": str(e)})

    result = {"benchmark": "quantize", "model": args.model, "threads": 1,
              "eval": "test split, " + (f"first {args.chars} characters" if args.chars else "all characters")
              + ", batch 1, state carried", "rows": rows, "measure": report.to_dict()}
    out = RESULTS / f"quantize_{args.model}.json"
    update_results(out, "result", result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
