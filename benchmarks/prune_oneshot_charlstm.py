"""One-shot unstructured pruning of a reference char-LSTM, no fine-tuning.

    .venv/bin/python benchmarks/prune_oneshot_charlstm.py [--model charlstm-512x2] [--chars 5000]

Prunes the recurrent layers' weights (weight_ih, weight_hh) and the output layer
(decoder.weight) at 50 / 70 / 90 % with magnitude (layer-wise and global threshold), plus
the data-driven criteria at 90 % layer-wise; reports the validation loss on the first
--chars characters of the validation split (one stream, batch 1), non-zero parameters and
artifact bytes with sparse storage (sparse_auto). One thread. Writes
benchmarks/results/prune_oneshot_<model>.json.
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
    ap.add_argument("--chars", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    base = load_model(SHARED / "models" / f"{args.model}.json")
    task = CharLMTask.for_model(base, SHARED / "data" / "tinyshakespeare.txt")
    tmp = Path(tempfile.mkdtemp(prefix="prune_bench_"))
    save_model(base, tmp / "dense")
    rows = [{"method": "dense", "sparsity": 0.0, **task.evaluate(base, "valid", max_steps=args.chars),
             "nonzero_params": sum(int((p != 0).sum()) for p in base.parameters()),
             "artifact_bytes": artifact_bytes(tmp / "dense")}]

    runs = [(s, "magnitude", scope) for s in (0.5, 0.7, 0.9) for scope in ("layer", "global")]
    runs += [(0.9, c, "layer") for c in ("taylor", "fisher", "activation")]
    for sparsity, criterion, scope in runs:
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        res = prune_unstructured_(m, UnstructuredPruning(sparsity=sparsity, criterion=criterion, scope=scope,
                                                         targets=TARGETS), calibration=task)
        prune_s = time.perf_counter() - t0
        mark_sparse_(m, list(res.masks))
        save_model(m, tmp / "p")
        metrics = task.evaluate(m, "valid", max_steps=args.chars)
        rows.append({"method": f"{criterion}/{scope}", "sparsity": sparsity, **metrics,
                     "nonzero_params": res.report["model"]["nonzero"], "artifact_bytes": artifact_bytes(tmp / "p"),
                     "prune_seconds": round(prune_s, 2),
                     "tensor_sparsity": {n: round(r["sparsity"], 4) for n, r in res.report["tensors"].items()}})
        print(f"{criterion:10s} {scope:6s} {sparsity:.0%}: loss {metrics['loss']:.4f} nats/char, "
              f"{rows[-1]['artifact_bytes']:,} bytes", flush=True)

    result = {"benchmark": "prune_oneshot", "model": args.model, "targets": list(TARGETS),
              "eval": f"valid split, first {args.chars} characters, batch 1, state carried",
              "command": " ".join([sys.executable, *sys.argv]), "commit": _commit(), "machine": platform.platform(),
              "processor": platform.processor(), "threads": 1,
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "rows": rows}
    out = args.out or ROOT / "benchmarks" / "results" / f"prune_oneshot_{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\n| method | sparsity | valid loss (nats/char) | bits/char | non-zero params | artifact bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['sparsity']:.0%} | {r['loss']:.4f} | {r['bits_per_char']:.4f} | "
              f"{r['nonzero_params']:,} | {r['artifact_bytes']:,} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
