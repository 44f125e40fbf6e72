"""Deployment latency: streaming step at batch 1, 1 thread, every row timed in this one process.

    python benchmarks/deploy_bench.py --model charlstm-512x2 --compressed deploy-units384-int8 deploy-block16x4-75-int8
    python benchmarks/deploy_bench.py --model chargru-512x2

Rows:
  baselines of the dense model   torch nn default, torch nn oneDNN off, torch.ao dynamic int8 (deprecated),
                                 ONNX Runtime fp32, ONNX Runtime dynamic int8 (for a GRU its GRU node stays
                                 fp32), and for a GRU also rnnslim's unfused int8 ONNX graph in ORT
  rnnslim                        the dense model fully integer int8 in the C kernel; each compressed model
                                 (final model of a recipe run in benchmarks/runs/MODEL/NAME) in the C kernel,
                                 tile-sparse where its matrices allow and, for those, also forced dense; the
                                 exported C library (rnnslim.runtime, torch-free, ctypes per step)
Every rnnslim row carries its test loss (whole test split through the C kernel, bit-identical to the
model's torch reference), bytes read per step and its step time over the time to stream those bytes once
at the copy bandwidth measured in this run (JSON keys x_floor / x_cache_floor: a reference, not a lower
bound; table_parts.STREAM_REF). Ratios are against the fastest baseline of each kind (best torch:
table_parts.BEST_TORCH); the noise band of a ratio is
[its slowest-vs-fastest repeat pairing] from the per-repeat medians (BENCHMARKING.md, "Framing").
Writes benchmarks/results/deploy_MODEL.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, RUNS, update_results  # noqa: E402
from table_parts import BEST_TORCH_VARIANTS  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure import memory_bandwidth  # noqa: E402
from rnnslim.measure.baselines import TorchReference, baseline_variants  # noqa: E402
from rnnslim.measure.interleaved import median_step_ms, time_interleaved  # noqa: E402
from rnnslim.measure.latency import time_stream  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask, stream_nll  # noqa: E402
from rnnslim.utils.threads import torch_threads  # noqa: E402

STEPS, REPEATS, WARMUP = 300, 7, 100
BLOCK = 20  # steps per block of --interleave (~0.6-1 ms at 512 units: shorter than this VM's slow windows)
CACHE_BW: dict = {}  # working-set MiB -> Bandwidth of a copy that size
STEP_FNS: dict = {}  # C kernel row label -> its runner's stream step, for --interleave


def nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(logits, targets))


def kernel_row(label: str, model, d: torch.Tensor, bw, sparse="auto", **extra) -> dict:
    runner = IntegerRunner(model, sparse=sparse)
    logits, _ = runner.run(d[:-1])
    p = runner.program
    sparse_mats = [f"layer{k}.{w}" for k, ly in enumerate(p.layers) for w, m in (("w_ih", ly.wx), ("w_hh", ly.wh))
                   if m.sparse]
    row = {"variant": label, "kind": "rnnslim", "runs_in": f"C kernel ({runner.variant.value}, simd "
           f"{runner.simd_level})", "test_loss_nats": nll(logits, d[1:]), "hidden": runner.hidden,
           "bytes_per_step": p.bytes_per_step(), "tile_sparse": sparse_mats,
           "tile_density": {f"layer{k}": round((ly.wx.n_tiles + ly.wh.n_tiles) / (
               ly.wx.n_tiles / ly.wx.tile_density + ly.wh.n_tiles / ly.wh.tile_density), 3)
               for k, ly in enumerate(p.layers)}, **extra}
    STEP_FNS[label] = runner.stream_step_fn()
    row["latency"] = timed(STEP_FNS[label])
    row["floor_ms"] = bw.floor_ms(row["bytes_per_step"])
    row["x_floor"] = row["latency"]["median_ms"] / row["floor_ms"]
    # the weights of one step fit in this CPU's caches: the stream time that applies uses the copy
    # bandwidth of a buffer of the same size (L2 / L3), measured here too
    mib = max(1, -(-row["bytes_per_step"] // (1 << 20)))
    if mib not in CACHE_BW:
        CACHE_BW[mib] = memory_bandwidth(1, megabytes=mib, repeats=50)
    row["cache_floor_ms"] = CACHE_BW[mib].floor_ms(row["bytes_per_step"])
    row["cache_floor_working_set_mib"] = mib
    row["x_cache_floor"] = row["latency"]["median_ms"] / row["cache_floor_ms"]
    return row


def timed(step_fn) -> dict:
    box = {"s": None}

    def step():
        box["s"] = step_fn(box["s"])

    with torch_threads(1), torch.inference_mode():
        return {**time_stream(step, STEPS, REPEATS, WARMUP), "threads": 1}


def closure_timed(closure) -> dict:
    with torch_threads(1), torch.inference_mode():
        return {**time_stream(closure, STEPS, REPEATS, WARMUP), "threads": 1}


def interleave(rows: list[dict], rounds: int) -> None:
    """Time every C kernel row again, paired: REPEATS repeats of `rounds` rounds, each round running every
    row for BLOCK steps (order rotated), into row["interleaved"]. A slow window of this VM then hits both
    blocks of a round, and tables_sparse.py reads a ratio per round (rnnslim.measure.interleaved)."""
    labels = [r["variant"] for r in rows if r["variant"] in STEP_FNS]
    boxes = {label: {"s": None} for label in labels}

    def stepper(label):
        box, fn = boxes[label], STEP_FNS[label]

        def step():
            box["s"] = fn(box["s"])
        return step

    with torch_threads(1), torch.inference_mode():
        res = time_interleaved({label: stepper(label) for label in labels}, block=BLOCK, rounds=rounds,
                               repeats=REPEATS, warmup=WARMUP)
    for r in rows:
        if r["variant"] in labels:
            r["interleaved"] = {"block_ms": [[round(t, 5) for t in rep] for rep in res["block_ms"][r["variant"]]],
                                **{k: v for k, v in res.items() if k != "block_ms"},
                                "median_ms": median_step_ms(res, r["variant"])}


def ratio(base: dict, mine: dict) -> dict:
    b, m = base["latency"], mine["latency"]
    return {"x": b["median_ms"] / m["median_ms"], "band": [min(b["medians_ms"]) / max(m["medians_ms"]),
                                                        max(b["medians_ms"]) / min(m["medians_ms"])]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--compressed", nargs="*", default=[], help="recipe run names in benchmarks/runs/MODEL/")
    ap.add_argument("--quick", action="store_true", help="short timings (a smoke test; not for results)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="then time every C kernel row again, paired: 7 repeats of ROUNDS rounds of 20 steps of every "
                         "row, order rotated (row['interleaved']; ratios read per round: tables_sparse.py's "
                         "combined rows; 100-300 is plenty)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default benchmarks/results/deploy_MODEL.json), e.g. for a subset of rows")
    args = ap.parse_args()
    if args.quick:
        global STEPS, REPEATS, WARMUP
        STEPS, REPEATS, WARMUP = 40, 2, 10
    torch.set_num_threads(1)
    base = load_model(MODELS / f"{args.model}.json").eval()
    task = CharLMTask.for_model(base, DATA)
    d = task.split("test")
    base_loss = stream_nll(base, d)["loss_nats"]
    bw = memory_bandwidth(1)
    rows: list[dict] = []

    def add(row: dict) -> None:
        rows.append(row)
        lat = row.get("latency") or {}
        loss = f"test {row['test_loss_nats']:.4f}" if "test_loss_nats" in row else ""
        print(f"{row['variant']:58s} {lat.get('median_ms', float('nan')):8.4f} ms {loss}", flush=True)

    # --- baselines of the dense model -------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        variants, _ = baseline_variants(base, Path(tmp), None)
        for v in variants:
            if v.status != "ok":
                add({"variant": v.label, "kind": "baseline", "status": v.status})
                continue
            ctx = v.context() if v.context else torch.inference_mode()
            with ctx:
                add({"variant": v.label, "kind": "baseline", "note": v.note, "bytes_per_step": v.bytes_per_step,
                     "latency": closure_timed(v.stream(1))})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qref = torch.ao.quantization.quantize_dynamic(TorchReference(base).eval(),
                                                          {torch.nn.LSTM, torch.nn.GRU, torch.nn.Linear},
                                                          dtype=torch.qint8)
        x = torch.randint(0, base.spec.input_size, (64, 1, 1))
        box = {"s": None, "i": 0}

        def ao_step():
            _, box["s"] = qref(x[box["i"] % 64], box["s"])
            box["i"] += 1

        add({"variant": "torch.ao dynamic int8 (deprecated)", "kind": "baseline", "latency": closure_timed(ao_step)})
        if base.rnn.cell.value == "gru":
            from rnnslim.export.onnx import OrtStepRunner, example_inputs
            from rnnslim.export.onnx_int8 import export_int8_onnx

            facts = export_int8_onnx(base, Path(tmp) / "gru_int8.onnx")
            ort = OrtStepRunner(Path(tmp) / "gru_int8.onnx", 1)
            xs = [example_inputs(ort.layout, seed=i)[0] for i in range(64)]
            st = {"s": ort.init_state(1), "i": 0}

            def ort_step():
                _, st["s"] = ort.step(xs[st["i"] % 64], st["s"])
                st["i"] += 1

            add({"variant": "ONNX Runtime int8, unfused GRU (rnnslim export_int8_onnx)", "kind": "rnnslim-onnx",
                 "artifact_bytes": facts["bytes"], "latency": closure_timed(ort_step)})

    # --- rnnslim: dense int8, compressed int8, exported C ---------------------------------------
    dense = quantize_int8_(copy.deepcopy(base), Int8Config(mode=Int8Mode.INTEGER),
                           calibration=[b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)])
    add(kernel_row("int8 fully integer, dense model (C kernel)", dense, d, bw))
    for name in args.compressed:
        m = load_model(RUNS / args.model / name / "model").eval()
        row = kernel_row(f"{name} (C kernel)", m, d, bw, recipe=name)
        add(row)
        if row["tile_sparse"]:
            add(kernel_row(f"{name}, same weights packed dense (C kernel)", m, d, bw, sparse=False, recipe=name))
        with tempfile.TemporaryDirectory() as tmp:
            from rnnslim.export.c_source import export_c
            from rnnslim.runtime import ExportedModel

            facts = export_c(m, Path(tmp) / "c", name="model")
            em = ExportedModel(Path(tmp) / "c")
            toks = np.random.default_rng(0).integers(0, em.vocab, 256)
            state, out = em.new_state(), np.empty(em.outputs, np.float32)
            box = {"i": 0}

            def exported_step():
                em.step(int(toks[box["i"] % 256]), state, out)
                box["i"] += 1

            add({"variant": f"{name}, exported C via rnnslim.runtime (numpy + ctypes per step)", "kind": "rnnslim",
                 "recipe": name, "flash_bytes": facts.const_bytes, "ram_bytes": facts.ram_bytes,
                 "latency": closure_timed(exported_step)})

    if args.interleave:
        interleave(rows, args.interleave)
    # --- ratios vs the fastest baseline of each kind -------------------------------------------
    def best(pred) -> dict | None:
        cands = [r for r in rows if r.get("latency") and pred(r)]
        return min(cands, key=lambda r: r["latency"]["median_ms"]) if cands else None

    refs = {"ONNX Runtime int8 dynamic": best(lambda r: r["variant"] == "ONNX Runtime int8 dynamic"),
            "best torch": best(lambda r: r["variant"] in BEST_TORCH_VARIANTS),
            "torch.ao dynamic int8": best(lambda r: r["variant"].startswith("torch.ao dynamic int8")),
            "best baseline": best(lambda r: r["kind"] == "baseline"),
            "dense int8 C kernel": best(lambda r: r["variant"].startswith("int8 fully integer, dense"))}
    for r in rows:
        if r["kind"] == "rnnslim" and r.get("latency"):
            r["speedup"] = {k: ratio(ref, r) for k, ref in refs.items() if ref is not None}
            r["test_loss_change_pct"] = 100 * (r["test_loss_nats"] / base_loss - 1) if "test_loss_nats" in r else None
    result = {"model": args.model, "test_loss_fp32": base_loss, "threads": 1, "batch": 1, "timing": {"steps": STEPS, "repeats": REPEATS,
                                                                       "warmup": WARMUP},
              "bandwidth_gb_s": bw.gb_per_s,
              "references": {k: (v["variant"] if v else None) for k, v in refs.items()}, "rows": rows,
              "eval": "test split, all characters, batch 1, state carried, through the C kernel"}
    if not args.quick:
        update_results(args.out or RESULTS / f"deploy_{args.model}.json", "result", result)
    for r in rows:
        if "speedup" in r:
            s = r["speedup"]
            print(f"{r['variant']:58s} " + "  ".join(f"{k}: {v['x']:.2f}x [{v['band'][0]:.2f}, {v['band'][1]:.2f}]"
                                                      for k, v in s.items()))


if __name__ == "__main__":
    main()
