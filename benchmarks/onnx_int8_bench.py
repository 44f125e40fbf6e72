"""int8 ONNX step graphs with unfused recurrent matmuls (rnnslim.export.export_int8_onnx) against
ONNX Runtime fp32 and ORT's own dynamic int8 of the same model, plus torch.export `.pt2` programs.

    .venv/bin/python benchmarks/onnx_int8_bench.py --model chargru-512x2 [--chars 0] [--no-latency]

Rows (one model, all measured in this run):
    torch fp32                         the rnnslim model (PyTorch)
    ORT fp32 (fused)                   export_step_onnx: one ONNX LSTM/GRU node per layer
    ORT dynamic int8 (fused)           quantize_dynamic on that graph: LSTM -> DynamicQuantizeLSTM,
                                       GRU stays fp32 (ORT has no int8 GRU)
    ORT fp32 (unfused)                 export_int8_onnx's graph before quantization (the cost of unfusing)
    ORT int8 (unfused)                 export_int8_onnx default (gate table folded into the embedding
                                       when smaller, int8 gathered table, per-column int8 MatMuls)
    ORT int8 (unfused, no fold)        the same without folding the embedding
    torch.export fp32 / int4 (.pt2)    export_torch_program of the float model and of an int4 weight-only
                                       (g64, MSE clip) model, weights "float" and "stored"

Quality: mean NLL over the char-LM test split as one stream at batch 1, state carried (inputs d[:-1],
targets d[1:]); graphs with T fixed to 1 are run one character per call. Size: bytes of the file.
Latency: streaming step at batch 1, state carried, 1 thread (rnnslim.measure.streaming_latency:
median of 5 rounds of 200 steps after 50 warm-up steps), ORT sessions with intra_op_num_threads=1.
Targets (issue 8): int8 bytes <= 27% of the ORT fp32 file, int8 test loss <= fp32 torch loss x 1.005.
Writes benchmarks/results/onnx_int8_<model>.json.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.export.onnx import OrtStepRunner, export_step_onnx, quantize_dynamic_int8  # noqa: E402
from rnnslim.export.onnx_int8 import export_int8_onnx  # noqa: E402
from rnnslim.export.torch_export import export_torch_program, load_torch_program  # noqa: E402
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure import streaming_latency  # noqa: E402
from rnnslim.quantize.api import WeightOnly, quantize_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask, stream_nll  # noqa: E402

TARGET_BYTES_RATIO = 0.27
TARGET_LOSS_REL = 0.005


def nll(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    nats = F.cross_entropy(logits.float(), targets, reduction="mean").item()
    return {"loss_nats": nats, "bits_per_char": nats / math.log(2), "tokens": int(targets.numel())}


def ort_nll(path: Path, d: torch.Tensor) -> dict:
    """The stream through ORT: in chunks of 4096 steps when T is dynamic, one step per call otherwise."""
    r = OrtStepRunner(path, threads=1)
    x = d[:-1].numpy().reshape(-1, 1)
    chunk = 1 if r.layout.static_time else 4096
    state, outs = r.init_state(1), []
    for t in range(0, len(x), chunk):
        y, state = r.step(x[t : t + chunk], state)
        outs.append(np.asarray(y).reshape(-1, y.shape[-1]))
    return nll(torch.from_numpy(np.concatenate(outs)), d[1:])


def program_nll(path: Path, d: torch.Tensor) -> dict:
    prog = load_torch_program(path)
    x = d[:-1].reshape(-1, 1)
    state, outs = prog.init_state(1), []
    for t in range(len(x)):
        y, state = prog.step(x[t : t + 1], state)
        outs.append(y.reshape(-1, y.shape[-1]))
    return nll(torch.cat(outs), d[1:])


def ort_step_fn(path: Path, vocab: int):
    r = OrtStepRunner(path, threads=1)
    xs = [np.array([[i % vocab]], dtype=np.int64) for i in range(256)]
    box = {"i": 0}

    def step(state):
        state = r.init_state(1) if state is None else state
        i = box["i"]
        box["i"] = i + 1
        return r.step(xs[i % len(xs)], state)[1]

    return step


def program_step_fn(path: Path, vocab: int):
    prog = load_torch_program(path)
    xs = [torch.tensor([[i % vocab]]) for i in range(256)]
    box = {"i": 0}

    def step(state):
        state = prog.init_state(1) if state is None else state
        i = box["i"]
        box["i"] = i + 1
        return prog.step(xs[i % len(xs)], state)[1]

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="chargru-512x2")
    ap.add_argument("--chars", type=int, default=0, help="evaluate the first N test characters (0: all)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-torch-export", action="store_true", help="skip the .pt2 rows")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    base = load_model(MODELS / f"{args.model}.json")
    task = CharLMTask.for_model(base, DATA)
    d = task.split("test")
    if args.chars:
        d = d[: args.chars + 1]
    V = base.spec.input_size
    tmp = Path(tempfile.mkdtemp(prefix="oi8bench_"))
    rows: list[dict] = []

    def lat(step_fn=None, model=None):
        if args.no_latency:
            return None
        out = streaming_latency(model, threads=1, step_fn=step_fn) if step_fn else streaming_latency(model, threads=1)
        return {"median_ms": out["median_ms"], "spread_ms": out["spread_ms"], "load_avg": list(os.getloadavg())}

    def add(name, kind, quality, size, latency, **extra):
        row = {"variant": name, "kind": kind, "test_loss_nats": quality["loss_nats"] if quality else None,
               "bits_per_char": quality["bits_per_char"] if quality else None, "artifact_bytes": size,
               "latency": latency, **extra}
        rows.append(row)
        loss = f"{row['test_loss_nats']:.4f}" if quality else "   -  "
        ms = f"{latency['median_ms']:.3f} ms" if latency else "-"
        print(f"{name:44s} test {loss}  {size:>11,} B  {ms}", flush=True)

    ref_q = stream_nll(base, d)
    add("torch fp32", "torch", ref_q, (MODELS / f"{args.model}.safetensors").stat().st_size, lat(model=base),
        note="size: the .safetensors weights file")

    fp32 = tmp / "fused_fp32.onnx"
    exp = export_step_onnx(base, fp32)
    add("ORT fp32 (fused)", "ort_fp32", ort_nll(fp32, d), fp32.stat().st_size, lat(ort_step_fn(fp32, V)),
        exporter=exp.exporter, op_types=exp.op_types, parity_max_abs_diff=exp.parity_max_abs_diff)
    fp32_bytes = fp32.stat().st_size

    dyn = tmp / "fused_dyn_int8.onnx"
    ops = quantize_dynamic_int8(fp32, dyn)
    add("ORT dynamic int8 (fused)", "ort_int8_fused", ort_nll(dyn, d), dyn.stat().st_size, lat(ort_step_fn(dyn, V)),
        op_types=ops, bytes_ratio=dyn.stat().st_size / fp32_bytes)

    unf = tmp / "unfused_fp32.onnx"
    i8 = tmp / "unfused_int8.onnx"
    t0 = time.perf_counter()
    facts = export_int8_onnx(base, i8, fp32_path=unf)
    export_s = time.perf_counter() - t0
    add("ORT fp32 (unfused, before quantization)", "ort_fp32_unfused", ort_nll(unf, d), unf.stat().st_size,
        lat(ort_step_fn(unf, V)), fold_embedding=facts["fold_embedding"],
        parity_max_abs_diff=facts["parity_fp32_max_abs_diff"])
    q = ort_nll(i8, d)
    add("ORT int8 (unfused)", "ort_int8_unfused", q, facts["bytes"], lat(ort_step_fn(i8, V)),
        export_seconds=round(export_s, 2), bytes_ratio=facts["bytes"] / fp32_bytes,
        loss_rel=q["loss_nats"] / ref_q["loss_nats"] - 1,
        facts={k: v for k, v in facts.items() if k != "path"})
    main_row = rows[-1]

    nf = tmp / "unfused_int8_nofold.onnx"
    facts_nf = export_int8_onnx(base, nf, fold_embedding=False)
    q_nf = ort_nll(nf, d)
    add("ORT int8 (unfused, no fold)", "ort_int8_unfused", q_nf, facts_nf["bytes"], lat(ort_step_fn(nf, V)),
        bytes_ratio=facts_nf["bytes"] / fp32_bytes, loss_rel=q_nf["loss_nats"] / ref_q["loss_nats"] - 1,
        facts={k: v for k, v in facts_nf.items() if k != "path"})

    if not args.no_torch_export:
        pt = tmp / "fp32.pt2"
        f_pt = export_torch_program(base, pt)
        add("torch.export fp32 (.pt2)", "torch_export", program_nll(pt, d), f_pt["bytes"],
            lat(program_step_fn(pt, V)), parity=f_pt["parity"])
        q4 = copy.deepcopy(base)
        quantize_(q4, WeightOnly(bits=4, group_size=64, clip="mse"))
        q4_q = stream_nll(q4, d)
        for mode in ("float", "stored"):
            p = tmp / f"int4_{mode}.pt2"
            f4 = export_torch_program(q4, p, weights=mode, check_steps=20)
            # the program equals the int4 model (parity below); its loss is the int4 model's, measured in
            # torch (streaming the "stored" program, which decodes every weight per step, would take long)
            add(f"torch.export int4 weight-only g64, weights={mode} (.pt2)", "torch_export", q4_q, f4["bytes"],
                lat(program_step_fn(p, V)), parity=f4["parity"],
                loss_note="loss of the int4 model in torch; the program's max |diff| to it is in parity")

    targets = {"bytes_ratio": main_row["bytes_ratio"], "bytes_ratio_target": TARGET_BYTES_RATIO,
               "bytes_ok": main_row["bytes_ratio"] <= TARGET_BYTES_RATIO,
               "loss_rel": main_row["loss_rel"], "loss_rel_target": TARGET_LOSS_REL,
               "loss_ok": main_row["loss_rel"] <= TARGET_LOSS_REL}
    if not args.no_latency:
        ort_fp32 = next(r for r in rows if r["kind"] == "ort_fp32")["latency"]["median_ms"]
        targets["latency_ms_ort_fp32"] = ort_fp32
        targets["latency_ms_ort_int8_unfused"] = main_row["latency"]["median_ms"]
        targets["speedup_vs_ort_fp32"] = ort_fp32 / main_row["latency"]["median_ms"]
    print(targets)
    result = {"benchmark": "onnx_int8", "model": args.model, "threads": 1,
              "eval": "test split, " + (f"first {args.chars} characters" if args.chars else f"all {len(d)} characters")
              + " (" + f"{len(d) - 1} predictions" + "), batch 1, state carried",
              "rows": rows, "targets": targets, "seconds": round(time.perf_counter() - t_start, 1)}
    out = RESULTS / f"onnx_int8_{args.model}.json"
    update_results(out, "result", result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
