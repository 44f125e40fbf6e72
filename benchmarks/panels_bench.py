"""Panels vs dense int8 products on saved N:M-pruned models (issue 22): thread CPU time per step.

For each saved (float, pruned) model (DIR/model.json, e.g. H9's OBS N:M 1-of-m rows in
benchmarks/runs/strip_pruning/<model>/oneshot-nm1ofM-{75,90}), every recurrent matrix a streaming
step multiplies (W_hh of every layer, W_ih of layers >= 1: layer 0's input term is a folded
embedding table) is quantized per row to int8 (zeros stay zeros), packed dense and as panels
(quantize/int8/panels.py), and y = W x is timed with benchmarks/panels_bench.c (rnnslim_core.h's
matvec vs rnnslim_panels.h), built native (-march=native) and portable (-DRS_PORTABLE, the
microcontroller's C). Dense and panels alternate in every round; the row reports the median over
rounds of the summed per-step time. The products are checked equal before timing.

This times the products only, not the whole step (gates, requantization, decoder); the step
speed-up is smaller by the step's non-product share. Run:
  python benchmarks/panels_bench.py --out benchmarks/results/panels_bench.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.quantize.int8.packed import pack_matrix  # noqa: E402
from rnnslim.quantize.int8.panels import pack_panels, panel_group_count, panels_nbytes  # noqa: E402
from rnnslim.runtime.build import compile_shared  # noqa: E402

INT8 = ROOT / "src" / "rnnslim" / "quantize" / "int8"
RUNS = ROOT / "benchmarks" / "runs" / "strip_pruning"
FLAGS = {"native": ["-O3", "-march=native"], "avx2": ["-O3", "-mavx2"], "portable": ["-O2", "-DRS_PORTABLE"]}
P = ctypes.c_void_p


def build(variant: str) -> ctypes.CDLL:
    path = compile_shared([Path(__file__).with_name("panels_bench.c")], FLAGS[variant] + [f"-I{INT8}"],
                          f"rnnslim_panels_bench_{variant}", depends=[INT8 / "rnnslim_core.h", INT8 / "rnnslim_panels.h"])
    lib = ctypes.CDLL(str(path))
    lib.bench_dense.restype = lib.bench_panels.restype = ctypes.c_double
    return lib


def aligned(a: np.ndarray) -> np.ndarray:
    """a copy of a at a 64-byte aligned address (the dense tiles are loaded aligned)"""
    buf = np.zeros(a.nbytes + 64, np.uint8)
    off = -buf.ctypes.data % 64
    out = buf[off:off + a.nbytes].view(a.dtype)
    out[:] = a.reshape(-1)
    return out


def step_matrices(model) -> list[np.ndarray]:
    """int8 per-row quantized recurrent matrices of one streaming step (see the module docstring)"""
    out = []
    for name, w in model.state_dict().items():
        if not (name.endswith("weight_hh_l0") or (name.endswith("weight_ih_l0") and ".layers.0." not in name)):
            continue
        w = w.float().numpy()
        scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-12) / 127
        out.append(np.clip(np.round(w / scale), -127, 127).astype(np.int8))
    return out


def packed(q: np.ndarray) -> dict:
    d = pack_matrix(q, sparse=False)
    full = np.zeros((d.rows_p, d.cols_p), np.int8)
    full[: q.shape[0], : q.shape[1]] = q
    w, ptr, idx = pack_panels(full)
    return {"rows_p": d.rows_p, "cols_p": d.cols_p, "dense_w": aligned(d.w), "corr": aligned(d.corr),
            "w": aligned(w), "idx": aligned(idx), "ptr": ptr, "full": full, "groups": panel_group_count(full)}


def check(lib, m: dict, rng) -> None:
    x = rng.integers(-128, 128, m["cols_p"]).astype(np.int8)
    ref = m["full"].astype(np.int64) @ x.astype(np.int64)
    for how in ("dense", "panels"):
        y = np.zeros(m["rows_p"], np.int32)
        time_one(lib, how, m, x, y, 1)
        if not np.array_equal(y, ref):
            raise SystemExit(f"{how} product differs from the int64 reference")


def time_one(lib, how: str, m: dict, x: np.ndarray, y: np.ndarray, reps: int) -> float:
    i = ctypes.c_int
    if how == "dense":
        return lib.bench_dense(P(m["dense_w"].ctypes.data), P(m["corr"].ctypes.data), i(m["rows_p"]), i(m["cols_p"]),
                               P(x.ctypes.data), P(y.ctypes.data), i(reps))
    return lib.bench_panels(P(m["w"].ctypes.data), P(m["idx"].ctypes.data), P(m["ptr"].ctypes.data),
                            P(m["corr"].ctypes.data), i(m["rows_p"]), i(m["cols_p"]), P(x.ctypes.data),
                            P(y.ctypes.data), i(reps))


def time_model(lib, mats: list[dict], rounds: int, reps: int) -> dict:
    rng = np.random.default_rng(0)
    xs = [rng.integers(-128, 128, m["cols_p"]).astype(np.int8) for m in mats]
    ys = [np.zeros(m["rows_p"], np.int32) for m in mats]
    per = {"dense": [], "panels": []}
    for r in range(rounds):
        order = ("dense", "panels") if r % 2 == 0 else ("panels", "dense")
        for how in order:
            per[how].append(sum(time_one(lib, how, m, x, y, reps) for m, x, y in zip(mats, xs, ys)) / 1e3)  # us
    dense, pan = statistics.median(per["dense"]), statistics.median(per["panels"])
    return {"dense_us": round(dense, 3), "panels_us": round(pan, 3), "speedup": round(dense / pan, 3),
            "dense_us_rounds": [round(v, 3) for v in per["dense"]], "panels_us_rounds": [round(v, 3) for v in per["panels"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["charlstm-512x2", "chargru-512x2"])
    ap.add_argument("--runs", nargs="+", default=["oneshot-nm1ofM-75", "oneshot-nm1ofM-90"])
    ap.add_argument("--variants", nargs="+", default=["native", "portable"])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    libs = {v: build(v) for v in args.variants}
    rows = []
    for model_name in args.models:
        for run in args.runs:
            d = RUNS / model_name / run
            meta = json.loads((d.parent / f"{run}.json").read_text())
            mats = [packed(q) for q in step_matrices(load_model(d / "model.json"))]
            nnz = sum(int((m["full"] != 0).sum()) for m in mats)
            dense_bytes = sum(m["rows_p"] * m["cols_p"] for m in mats)
            groups = sum(m["groups"] for m in mats)
            row = {"model": model_name, "run": run, "sparsity": meta.get("sparsity"), "test_loss": meta.get("test_loss"),
                   "matrices": len(mats), "nonzero_codes": nnz, "stored_codes": 64 * groups,
                   "dense_macs": dense_bytes, "panels_macs": 64 * groups, "dense_bytes": dense_bytes,
                   "panels_bytes": sum(panels_nbytes(m["rows_p"], m["cols_p"], m["groups"]) for m in mats)}
            for v, lib in libs.items():
                rng = np.random.default_rng(1)
                for m in mats:
                    check(lib, m, rng)
                row[v] = {"simd_level": lib.bench_simd_level(), **time_model(lib, mats, args.rounds, args.reps)}
                print(f"{model_name} {run} {v}: dense {row[v]['dense_us']} us, panels {row[v]['panels_us']} us,"
                      f" {row[v]['speedup']}x", flush=True)
            rows.append(row)
    result = {"what": "thread CPU time of one streaming step's recurrent int8 products (W_hh all layers, W_ih layers >= 1), "
                      "dense (rnnslim_core.h matvec) vs panels (rnnslim_panels.h), median of alternating rounds",
              "machine": platform.processor() or platform.machine(), "rounds": args.rounds, "reps": args.reps, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
