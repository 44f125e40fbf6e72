"""Weight-only quantization of a reference model: loss vs artifact bytes (no fine-tuning).

    .venv/bin/python benchmarks/quantize_weights.py [--model charlstm-512x2] [--split valid] [--chars 5000]

Variants: fp32, bf16/fp16 storage, int8 per gate row, int4/int3/int2 group-wise (64),
ternary, k-means weight sharing (16 clusters, with and without lzma-coded indices) and a
mixed-precision plan under a byte budget; every layer quantized (embedding, recurrent
layers, decoder). Reports the loss on the first --chars characters of the split (one
stream, batch 1, state carried; 0 = whole split), artifact bytes (save_model +
artifact_bytes), the worst per-layer weight SQNR, and whether the reloaded model gives
bit-identical outputs. One thread. Writes benchmarks/results/quantize_weights_<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.quantize.api import HalfPrecision, KMeans, Ternary, WeightOnly, quantize_
from rnnslim.quantize.mixed import MixedPrecision, apply_plan_, plan_mixed_precision
from rnnslim.tasks.charlm import CharLMTask

VARIANTS = [
    ("fp32", None),
    ("bf16", HalfPrecision(dtype="bf16")),
    ("fp16", HalfPrecision(dtype="fp16")),
    ("int8 per-row", WeightOnly(bits=8, group_size=None)),
    ("int4 g64", WeightOnly(bits=4, group_size=64)),
    ("int4 g64 mse-clip", WeightOnly(bits=4, group_size=64, clip="mse")),
    ("int3 g64 mse-clip", WeightOnly(bits=3, group_size=64, clip="mse")),
    ("int2 g64", WeightOnly(bits=2, group_size=64)),
    ("int2 g64 asym mse-clip", WeightOnly(bits=2, group_size=64, symmetric=False, clip="mse")),
    ("ternary g64", Ternary(group_size=64)),
    ("kmeans16", KMeans(clusters=16)),
    ("kmeans16 + lzma indices", KMeans(clusters=16, entropy_coding=True)),
]


def _row(name, model, task, args, tmp: Path, seconds: float, extra: dict | None = None) -> dict:
    metrics = task.evaluate(model, args.split, max_steps=args.chars or None)
    save_model(model, tmp / "q")
    x = task.split(args.split)[:400].unsqueeze(1)
    identical = torch.equal(load_model(tmp / "q")(x)[0], model(x)[0])
    layers = (model.history[-1].get("layers") if getattr(model, "history", None) else None) or []
    sqnrs = [r["weight_sqnr_db"] for r in layers if isinstance(r, dict) and "weight_sqnr_db" in r]
    row = {"variant": name, "loss": metrics["loss"], "bits_per_char": metrics["bits_per_char"],
           "artifact_bytes": artifact_bytes(tmp / "q"), "min_weight_sqnr_db": min(sqnrs) if sqnrs else None,
           "reload_identical": identical, "quantize_seconds": round(seconds, 2), **(extra or {})}
    print(f"{name:26s} loss {row['loss']:.4f}  {row['artifact_bytes']:>11,} bytes  "
          f"sqnr {row['min_weight_sqnr_db']}  identical {identical}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--chars", type=int, default=5000, help="evaluate the first N characters (0: whole split)")
    ap.add_argument("--budget-ratio", type=float, default=0.09, help="mixed-precision budget / fp32 tensor bytes")
    args = ap.parse_args()
    torch.set_num_threads(1)

    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    tmp = Path(tempfile.mkdtemp(prefix="quant_bench_"))
    rows = []
    for name, cfg in VARIANTS:
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        if cfg is not None:
            quantize_(m, cfg)
        rows.append(_row(name, m, task, args, tmp, time.perf_counter() - t0))

    m = copy.deepcopy(base)
    t0 = time.perf_counter()
    plan = plan_mixed_precision(m, task, MixedPrecision(bits=(8, 4, 3, 2), group_size=64, budget_ratio=args.budget_ratio))
    apply_plan_(m, plan)
    print(plan)
    rows.append(_row(f"mixed {{8,4,3,2}} budget {args.budget_ratio:.0%}", m, task, args, tmp,
                     time.perf_counter() - t0, {"plan": plan.as_dict()}))

    fp = rows[0]
    span = f"first {args.chars} characters" if args.chars else "all characters"
    result = {"benchmark": "quantize_weights", "model": args.model, "threads": 1,
              "eval": f"{args.split} split, {span}, batch 1, state carried", "rows": rows}
    out = RESULTS / f"quantize_weights_{args.model}.json"
    update_results(out, "result", result)
    print(f"\n| variant | {args.split} loss (nats/char) | change | artifact bytes | vs fp32 | min weight SQNR (dB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        sq = f"{r['min_weight_sqnr_db']:.1f}" if r["min_weight_sqnr_db"] is not None else ""
        print(f"| {r['variant']} | {r['loss']:.4f} | {r['loss'] - fp['loss']:+.4f} | {r['artifact_bytes']:,} | "
              f"{fp['artifact_bytes'] / r['artifact_bytes']:.2f}x | {sq} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
