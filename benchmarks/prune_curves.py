"""One-shot (no fine-tuning) loss-vs-sparsity curves of four importance criteria.

    .venv/bin/python benchmarks/prune_curves.py [--model charlstm-512x2] [--split test] [--chars 0]

Prunes the recurrent layers' weights (weight_ih, weight_hh) and the output layer
(decoder.weight) layer-wise at 30..90 % with magnitude, Taylor (gradient x weight),
diagonal Fisher (OBD) and activation-aware (|W| x input norm) scores (8 calibration
batches from the training split), plus magnitude with one global threshold; reports the
loss on the split (one stream, batch 1, whole split unless --chars), non-zero parameters
and artifact bytes with sparse storage (sparse_auto). One thread. Writes
benchmarks/results/prune_curves_<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnslim.io.format import artifact_bytes, load_model, save_model
from rnnslim.prune.masks import mark_sparse_
from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_
from rnnslim.tasks.charlm import CharLMTask

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TARGETS = ("input", "recurrent", "output")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--chars", type=int, default=0, help="evaluate only the first N characters (0: all)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    base = load_model(SHARED / "models" / f"{args.model}.json")
    task = CharLMTask.for_model(base, SHARED / "data" / "tinyshakespeare.txt")
    tmp = Path(tempfile.mkdtemp(prefix="prune_bench_"))
    save_model(base, tmp / "dense")
    rows = [{"method": "dense", "sparsity": 0.0, **task.evaluate(base, args.split, max_steps=args.chars or None),
             "nonzero_params": sum(int((p != 0).sum()) for p in base.parameters()),
             "artifact_bytes": artifact_bytes(tmp / "dense")}]

    levels = (0.3, 0.5, 0.7, 0.8, 0.9)
    runs = [(s, c, "layer") for c in ("magnitude", "taylor", "fisher", "activation") for s in levels]
    runs += [(s, "magnitude", "global") for s in levels]
    for sparsity, criterion, scope in runs:
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        res = prune_unstructured_(m, UnstructuredPruning(sparsity=sparsity, criterion=criterion, scope=scope,
                                                         targets=TARGETS), calibration=task)
        prune_s = time.perf_counter() - t0
        mark_sparse_(m, list(res.masks))
        save_model(m, tmp / "p")
        metrics = task.evaluate(m, args.split, max_steps=args.chars or None)
        rows.append({"method": f"{criterion}/{scope}", "sparsity": sparsity, **metrics,
                     "nonzero_params": res.report["model"]["nonzero"], "artifact_bytes": artifact_bytes(tmp / "p"),
                     "prune_seconds": round(prune_s, 2),
                     "tensor_sparsity": {n: round(r["sparsity"], 4) for n, r in res.report["tensors"].items()}})
        print(f"{criterion:10s} {scope:6s} {sparsity:.0%}: loss {metrics['loss']:.4f} nats/char, "
              f"{rows[-1]['artifact_bytes']:,} bytes", flush=True)

    result = {"benchmark": "prune_curves", "model": args.model, "targets": list(TARGETS),
              "eval": f"{args.split} split, {'first %d characters' % args.chars if args.chars else 'all characters'}, batch 1, state carried",
              "command": " ".join([sys.executable, *sys.argv]), "commit": _commit(), "machine": platform.platform(),
              "processor": platform.processor(), "threads": 1,
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "rows": rows}
    out = args.out or ROOT / "benchmarks" / "results" / f"prune_curves_{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\n| method | sparsity | {args.split} loss (nats/char) | bits/char | non-zero params | artifact bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['sparsity']:.0%} | {r['loss']:.4f} | {r['bits_per_char']:.4f} | "
              f"{r['nonzero_params']:,} | {r['artifact_bytes']:,} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
