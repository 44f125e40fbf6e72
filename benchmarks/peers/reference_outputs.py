"""rnnslim's side of the peer benchmarks: the same test prefix, reference logits and rnnslim's int8 row.

    .venv/bin/python benchmarks/peers/reference_outputs.py --model charlstm-256x2 --chars 20000 \
        --parity-chars 2000 --out /tmp/peers_ref [--no-latency] [--latency-only]

Run with the main venv (it imports rnnslim); the peer scripts (litert_bench.py, run with a separate
venv that has no torch) call it as a subprocess and read what it writes into --out:

    ids.npy              int64 (chars + 1,) the first chars + 1 characters of the test split
                         (rnnslim.tasks.charlm: test = [0.95, 1.0) of the file's characters), so the
                         peer can check that it reads the same text
    parity_logits.npy    float32 (parity_chars, V) logits of the fp32 model over ids[:parity_chars],
                         one stream from the zero state (torch, 1 thread)
    reference.json       rows: fp32 (torch) and int8 fully integer (C kernel, IntegerRunner) test loss on
                         the prefix (mean NLL of ids[1:] given ids[:-1], batch 1, state carried),
                         artifact bytes, C export const bytes, streaming step latency at batch 1

                         then (--extras, on by default) rnnslim's rows beyond int8 (reference_extras.py:
                         weight-only GPTQ int4 / int3 / int2, the deploy recipes, the search's best recipe),
                         and "noise_band": the noise band of this prefix (reference_extras.prefix_noise_band)

int8: quantize_int8_(Int8Config(mode=INTEGER)) calibrated on 8 training batches of 16 x 64 characters
(as benchmarks/embedded_bench.py and quantize_bench.py do). Latency: rnnslim.measure.streaming_latency
(median of 5 rounds of 200 steps after 50 warm-up steps, 1 thread).
A --model naming one of reference_classifier.CLASSIFIERS (the "your model to the device" classifiers)
writes that classifier's files instead (reference_classifier.py's docstring); --chars does not apply.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS  # noqa: E402
from reference_extras import gptq_rows, prefix_noise_band, recipe_rows  # noqa: E402

from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.measure import streaming_latency  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask, stream_nll  # noqa: E402

CALIB_BATCHES, CALIB_BATCH, CALIB_LEN = 8, 16, 64


def nll(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    nats = F.cross_entropy(logits.float(), targets, reduction="mean").item()
    return {"loss_nats": nats, "bits_per_char": nats / math.log(2), "tokens": int(targets.numel())}


def latency(args, **kw) -> dict | None:
    if args.no_latency:
        return None
    out = streaming_latency(threads=1, **kw)
    return {"median_ms": out["median_ms"], "spread_ms": out["spread_ms"], "load_avg": list(os.getloadavg()),
            "how": "rnnslim.measure.streaming_latency: median of 5 rounds x 200 steps after 50 warm-up, 1 thread"}


def integer_model(base, task) -> tuple:
    """A copy of `base` converted to fully integer int8, and the seconds the conversion took."""
    m = copy.deepcopy(base)
    calib = [b.inputs for b in task.calibration_batches(CALIB_BATCHES, batch_size=CALIB_BATCH, seq_len=CALIB_LEN)]
    t0 = time.perf_counter()
    quantize_int8_(m, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    return m, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-256x2")
    ap.add_argument("--chars", type=int, default=20000, help="first N test characters (0: the whole test split)")
    ap.add_argument("--parity-chars", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-only", action="store_true",
                    help="print one line 'LATENCY {json}': the int8 C kernel's step latency only")
    ap.add_argument("--extras", action=argparse.BooleanOptionalAction, default=True,
                    help="rnnslim's GPTQ int4/3/2, deploy and search recipe rows and the prefix's noise band")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if not (MODELS / f"{args.model}.json").exists():  # a classifier of the device table (imports aeon, onnx)
        from reference_classifier import CLASSIFIERS, latency_only, write_reference

        if args.model not in CLASSIFIERS:
            raise SystemExit(f"unknown model {args.model!r}: not in {MODELS} nor one of {sorted(CLASSIFIERS)}")
        if args.latency_only:
            print("LATENCY " + json.dumps(latency_only(args.model)), flush=True)
        else:
            write_reference(args.model, args.out, args.no_latency)
        return
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    if args.latency_only:
        runner = IntegerRunner(integer_model(base, task)[0])
        print("LATENCY " + json.dumps(latency(args, step_fn=runner.stream_step_fn())), flush=True)
        return
    d = task.split("test")
    if args.chars:
        d = d[: args.chars + 1]
    np.save(args.out / "ids.npy", d.numpy().astype(np.int64))

    base.eval()
    with torch.inference_mode():
        x = d[: args.parity_chars].reshape(-1, 1)  # (T, 1)
        logits, _ = base(x, None)
    np.save(args.out / "parity_logits.npy", logits[:, 0].float().numpy())

    rows = []
    q = stream_nll(base, d)
    rows.append({"variant": "rnnslim fp32 (torch)", "test_loss_nats": q["loss_nats"],
                 "bits_per_char": q["bits_per_char"],
                 "artifact_bytes": artifact_bytes(MODELS / f"{args.model}.json"),
                 "latency": latency(args, model=base), "note": "bytes: manifest + fp32 safetensors"})

    m, quant_s = integer_model(base, task)
    runner = IntegerRunner(m)
    logits, _ = runner.run(d[:-1])
    q = nll(logits, d[1:])
    with tempfile.TemporaryDirectory(prefix="peers_ref_") as tmp:
        save_model(m, Path(tmp) / "int8")
        size = artifact_bytes(Path(tmp) / "int8")
        facts = export_c(m, Path(tmp) / "c", name="model")
    rows.append({"variant": "rnnslim int8 fully integer (C kernel, IntegerRunner)", "test_loss_nats": q["loss_nats"],
                 "bits_per_char": q["bits_per_char"], "artifact_bytes": size,
                 "c_export": {"const_bytes": facts.const_bytes, "scratch_bytes": facts.scratch_bytes,
                              "state_bytes": facts.state_bytes},
                 "latency": latency(args, step_fn=runner.stream_step_fn()),
                 "kernel_variant": str(runner.variant.value), "quantize_seconds": round(quant_s, 2),
                 "calibration": f"{CALIB_BATCHES} training batches x {CALIB_BATCH} x {CALIB_LEN} characters",
                 "note": "artifact_bytes: rnnslim save_model (manifest + safetensors); c_export.const_bytes: the "
                         "flash of export_c's C arrays; scratch + state bytes: its RAM"})
    out = {"model": args.model, "test_chars": int(len(d) - 1), "parity_chars": int(min(args.parity_chars, len(d))),
           "torch": torch.__version__, "rows": rows}
    if args.extras:
        def lat(**kw):
            return latency(args, **kw)
        rows += gptq_rows(args.model, base, task, d, lat) + recipe_rows(args.model, d, lat)
        out["noise_band"] = prefix_noise_band(base, d)
    (args.out / "reference.json").write_text(json.dumps(out, indent=1))
    for r in rows[:2]:
        ms = f"{r['latency']['median_ms']:.4f} ms" if r["latency"] else "-"
        print(f"{r['variant']:55s} {r['test_loss_nats']:.4f} nats  {r['artifact_bytes']:>10,} B  {ms}", flush=True)


if __name__ == "__main__":
    main()
