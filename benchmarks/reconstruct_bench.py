"""One-shot reconstruction from calibration data, no fine-tuning: what a few calibration
batches buy, against the one-shot methods that do not reconstruct, in the same run.

    python benchmarks/reconstruct_bench.py obs   --model charlstm-512x2    # SparseGPT-style curve
    python benchmarks/reconstruct_bench.py gptq  --model chargru-512x2     # GPTQ vs round-to-nearest
    python benchmarks/reconstruct_bench.py units --model charlstm-512x2    # prune_units cut, before/after refit
    python benchmarks/reconstruct_bench.py int8  --model chargru-512x2     # fully integer int8, RTN vs GPTQ weights

Each row: test loss (whole split, batch 1, state carried), change vs the input model,
artifact bytes on disk (sparse / packed storage), and the compute the method used (wall
seconds, calibration tokens, threads, device: this CPU). Results are merged into
benchmarks/results/reconstruct_<model>.json under the sub-command's key. Latency is not
measured here (these models run dense fp32 kernels; see run_recipes.py for timed rows).
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
from common import DATA, MODELS, RESULTS, provenance, update_results  # noqa: E402

from rnnslim.io.format import artifact_bytes, load_model, save_model  # noqa: E402
from rnnslim.prune.masks import mark_sparse_  # noqa: E402
from rnnslim.tasks import task_for_model  # noqa: E402

TOKENS_PER_BATCH = 16 * 64  # calibration batches are 16 streams x 64 steps


def _row(method: str, model, task, base_loss: float, seconds: float, calibration_batches: int, **extra) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, Path(tmp) / "m")
        size = artifact_bytes(Path(tmp) / "m")
    loss = task.evaluate(model, "test")["loss_nats"]
    row = {"method": method, "test_loss": loss, "delta": loss - base_loss, "delta_pct": 100 * (loss / base_loss - 1),
           "artifact_bytes": size, "compute": {"seconds": round(seconds, 1), "device": "cpu", "threads":
                                               torch.get_num_threads(), "finetune_steps": 0,
                                               "calibration_tokens": calibration_batches * TOKENS_PER_BATCH},
           **extra}
    print(f"{method:40s} test {loss:.4f} ({row['delta_pct']:+.2f}%)  {size:,} bytes  {seconds:.1f} s", flush=True)
    return row


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_obs(base, task, base_loss: float) -> list[dict]:
    from rnnslim.prune.unstructured import UnstructuredPruning, prune_unstructured_
    from rnnslim.reconstruct import OBSPruning, prune_obs_

    targets = ("input", "recurrent", "output")
    rows = []
    cases = [(f"obs/layer {s:.0%}", OBSPruning(sparsity=s, targets=targets)) for s in (0.3, 0.5, 0.7, 0.8, 0.9)]
    cases += [("obs/layer 2:4", OBSPruning(pattern="nm", targets=targets)),
              ("obs/layer block4x4 50%", OBSPruning(pattern="block", sparsity=0.5, targets=targets))]
    for name, cfg in cases:
        m = copy.deepcopy(base)
        res, sec = _timed(lambda: prune_obs_(m, cfg, task))  # noqa: B023
        mark_sparse_(m, list(res.masks))
        rows.append(_row(name, m, task, base_loss, sec, cfg.calibration_batches,
                         sparsity=res.report["total"]["sparsity"], nonzero_params=res.report["model"]["nonzero"]))
    for s in (0.5, 0.7):  # the best score-only criterion of the curves, same run
        m = copy.deepcopy(base)
        res, sec = _timed(lambda: prune_unstructured_(m, UnstructuredPruning(  # noqa: B023
            sparsity=s, criterion="fisher", targets=targets), calibration=task))  # noqa: B023
        mark_sparse_(m, list(res.masks))
        rows.append(_row(f"fisher/layer {s:.0%} (no reconstruction)", m, task, base_loss, sec, 8,
                         sparsity=res.report["total"]["sparsity"], nonzero_params=res.report["model"]["nonzero"]))
    return rows


def bench_gptq(base, task, base_loss: float) -> list[dict]:
    from rnnslim.quantize.api import WeightOnly, quantize_
    from rnnslim.quantize.primitives import ClipMethod
    from rnnslim.reconstruct import GPTQ, quantize_gptq_

    rows = []
    for bits, sym in ((2, False), (3, False), (3, True), (4, True)):
        label = f"int{bits} g64 {'sym' if sym else 'asym'} mse"
        m = copy.deepcopy(base)
        _, sec = _timed(lambda: quantize_(m, WeightOnly(bits=bits, symmetric=sym, clip=ClipMethod.MSE)))  # noqa: B023
        rows.append(_row(f"round-to-nearest {label}", m, task, base_loss, sec, 0, bits=bits))
        m = copy.deepcopy(base)
        cfg = GPTQ(bits=bits, symmetric=sym)
        _, sec = _timed(lambda: quantize_gptq_(m, cfg, task))  # noqa: B023
        rows.append(_row(f"gptq {label}", m, task, base_loss, sec, cfg.calibration_batches, bits=bits))
    return rows


def bench_units(base, task, base_loss: float, ratio: float) -> list[dict]:
    from rnnslim.prune import StructuredPruning, prune_units_
    from rnnslim.reconstruct.refit import refit_after_cut_

    rows = []
    for criterion in ("magnitude", "activation"):
        m = copy.deepcopy(base)
        res, sec = _timed(lambda: prune_units_(m, StructuredPruning(ratio=ratio, round_to=8,  # noqa: B023
                                                                    criterion=criterion, reduce="l1"),
                                                  calibration=task))  # l1: the committed runs' (default until 2026-12)
        params = sum(p.numel() for p in m.parameters())
        sizes = {g: list(v) for g, v in res.sizes.items()}
        rows.append(_row(f"prune_units {criterion} (cut only)", m, task, base_loss, sec, 8, params=params,
                         sizes=sizes))
        rep, sec2 = _timed(lambda: refit_after_cut_(m, base, res, task))  # noqa: B023
        rows.append(_row(f"prune_units {criterion} + least-squares refit", m, task, base_loss, sec + sec2,
                         rep["calibration_batches"], params=params, sizes=sizes, refit=rep))
    return rows


def bench_int8(base, task, base_loss: float) -> list[dict]:
    """Fully integer int8 (C kernel) with round-to-nearest vs GPTQ weights; 8 calibration batches
    for the activation ranges in both."""
    from rnnslim.quantize.int8 import Int8Config, IntegerRunner, quantize_int8_
    from rnnslim.reconstruct import gptq_int8_weights_

    calib = [b.inputs for b in task.calibration_batches(8, 16, 64)]
    d = task.split("test")
    rows = []
    for gptq in (False, True):
        m = copy.deepcopy(base)
        t0 = time.perf_counter()
        errors = gptq_int8_weights_(m, task) if gptq else None
        quantize_int8_(m, Int8Config(mode="integer"), calibration=calib)
        sec = time.perf_counter() - t0
        logits, _ = IntegerRunner(m).run(d[:-1])  # the C kernel, bit-exact with the integer reference
        loss = float(torch.nn.functional.cross_entropy(logits.float(), d[1:]))
        with tempfile.TemporaryDirectory() as tmp:
            save_model(m, Path(tmp) / "m")
            size = artifact_bytes(Path(tmp) / "m")
        name = f"int8 fully integer, {'gptq' if gptq else 'round-to-nearest'} weights"
        rows.append({"method": name, "test_loss": loss, "delta": loss - base_loss,
                     "delta_pct": 100 * (loss / base_loss - 1), "artifact_bytes": size,
                     "compute": {"seconds": round(sec, 1), "device": "cpu", "threads": torch.get_num_threads(),
                                 "finetune_steps": 0, "calibration_tokens": (32 * gptq + 8) * TOKENS_PER_BATCH},
                     "gptq_relative_output_error": errors})
        print(f"{name:40s} test {loss:.4f} ({rows[-1]['delta_pct']:+.2f}%)  {size:,} bytes  {sec:.1f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("obs", "gptq", "units", "int8"))
    ap.add_argument("--model", default="charlstm-512x2")
    ap.add_argument("--ratio", type=float, default=0.578, help="units: fraction of hidden units removed")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model(MODELS / f"{args.model}.json")
    task = task_for_model(base, DATA)
    base_loss = task.evaluate(base, "test")["loss_nats"]
    rows = {"obs": lambda: bench_obs(base, task, base_loss), "gptq": lambda: bench_gptq(base, task, base_loss),
            "units": lambda: bench_units(base, task, base_loss, args.ratio),
            "int8": lambda: bench_int8(base, task, base_loss)}[args.what]()
    update_results(RESULTS / f"reconstruct_{args.model}.json", args.what,
                   {"base_test_loss": base_loss, "rows": rows, "provenance": provenance(),
                    "eval": "test split, whole, batch 1, state carried"})


if __name__ == "__main__":
    main()
