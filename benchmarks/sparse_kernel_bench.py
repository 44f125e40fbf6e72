"""The 2:4 format of the integer kernel (issue 22, first step): step latency and flash of a
2:4-pruned int8 model, dense kernel vs 2:4 kernel.

    .venv/bin/python benchmarks/sparse_kernel_bench.py [--model charlstm-512x2] [--repeats 5]

The reference model pruned 2:4 with rnnslim's N:M pruning (NMPruning(n=2, m=4), magnitude,
the recurrent matrices: the decoder stays dense), then int8_integer (8 calibration batches of
16 x 64, as quantize_bench.py). Per kernel build (native: this CPU's best SIMD path; portable:
-DRS_PORTABLE, what a microcontroller runs) the streaming step of IntegerRunner with every
matrix dense (sparse=False) and with the 2:4 format where the pattern holds (sparse="nm24"):
batch 1, 1 thread, median of `repeats` x 200 steps (rnnslim.measure.streaming_latency), state
carried, 256 random tokens cycled. The two runners' logits over 512 tokens are checked equal
bit for bit. Flash: const_bytes of export_c with each choice (the 2:4 index included).
Writes benchmarks/results/sparse_kernel.json (machine and load in its provenance).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure import streaming_latency  # noqa: E402
from rnnslim.prune import NMPruning, prune_nm_  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402


def _latency(runner: IntegerRunner, repeats: int) -> dict:
    lat = streaming_latency(step_fn=runner.stream_step_fn(), threads=1, repeats=repeats)
    return {k: lat[k] for k in ("median_ms", "spread_ms", "medians_ms", "steps", "repeats")} | {
        "simd_level": runner.simd_level}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    pruned = copy.deepcopy(base)
    prune_nm_(pruned, NMPruning(n=2, m=4))
    calib = [b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)]
    q = quantize_int8_(pruned, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    out = {"model": args.model, "pruning": "NMPruning(n=2, m=4) magnitude, recurrent matrices", "threads": 1,
           "load_1min_before": os.getloadavg()[0]}
    tokens = torch.randint(0, q.embedding.num_embeddings, (512,), generator=torch.Generator().manual_seed(0))
    for variant in ("native", "portable"):
        dense = IntegerRunner(q, variant, sparse=False)
        nm = IntegerRunner(q, variant, sparse="nm24")
        formats = {f"layer{k}.{n}": ("2:4" if m.nm24 else "tiles" if m.sparse else "dense")
                   for k, ly in enumerate(nm.program.layers) for n, m in (("w_ih", ly.wx), ("w_hh", ly.wh))}
        a, _ = dense.run(tokens)
        b, _ = nm.run(tokens)
        row = {"bit_exact_512_tokens": bool(torch.equal(a, b)), "formats": formats,
               "bytes_per_step_dense": dense.program.bytes_per_step(), "bytes_per_step_nm24": nm.program.bytes_per_step(),
               "dense": _latency(dense, args.repeats), "nm24": _latency(nm, args.repeats)}
        row["speedup"] = row["dense"]["median_ms"] / row["nm24"]["median_ms"]
        out[variant] = row
        print(variant, {k: row[k] for k in ("bit_exact_512_tokens", "speedup")},
              row["dense"]["median_ms"], row["nm24"]["median_ms"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out["flash_const_bytes"] = {"dense": export_c(q, Path(tmp) / "d", name="m", sparse=False).const_bytes,
                                    "nm24": export_c(q, Path(tmp) / "n", name="m", sparse="nm24").const_bytes}
    out["load_1min_after"] = os.getloadavg()[0]
    print(out["flash_const_bytes"], flush=True)
    update_results(RESULTS / "sparse_kernel.json", args.model, out)


if __name__ == "__main__":
    main()
