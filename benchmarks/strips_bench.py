"""The strips format of the integer kernel (issue 22): step latency, MACs, bytes and flash of
16 x 1 strip-pruned int8 models, dense kernel vs strips kernel.

    .venv/bin/python benchmarks/strips_bench.py [--models charlstm-512x2 chargru-512x2] [--rounds 7]

Per model and sparsity (75 %, 90 %): the reference model with every recurrent matrix (W_ih, W_hh
of each layer) pruned to 16 x 1 column strips by magnitude (timing only: accuracy is
strip_pruning_bench.py's), two ways:
  strips4    per (16-row block, 64-column panel) a multiple of 4 strips kept (the format's
             no-padding contract, strips.py): strips scored by their squared weights, ranked
             per (block, panel), cut into chunks of 4, the best chunks of the matrix kept
  block16x1  prune_block_(BlockPruning(block_rows=16, block_cols=1)) as it is (counts per panel
             arbitrary: the packer pads each to a multiple of 4)
then int8_integer (8 calibration batches of 16 x 64, as quantize_bench.py). Per kernel build
(native: this CPU's best SIMD path, AVX512-VBMI + VNNI here; portable: -DRS_PORTABLE, what a
microcontroller runs) IntegerRunner with every matrix dense (sparse=False) and in the strips
format (sparse="strips"), checked equal bit for bit (logits and state over 512 tokens).

Timing, batch 1, 1 thread, in alternating rounds (every configuration once per round, the order
rotated each round, so load changes on this shared machine hit all of them): per round
  run   thread CPU time of IntegerRunner.run over 64 tokens (the C loop of rs_core_step) / 64,
        best of 3 calls: the kernel's step time (CPU time: with ~8 engineers on 2 cores a wall-clock
        run of milliseconds is preempted almost every time)
  step  wall-clock median of 200 IntegerRunner.step calls (Python -> ctypes -> rs_core_step, state
        carried): what a Python caller sees; valid for the native build (20-50 us steps are rarely
        preempted), biased for the portable one (ms steps are preempted often, longer ones more)
The result per configuration is the median over rounds and the noise band [min, max] of the
round values; the speed-up is the median over rounds of the paired ratio dense / strips, with
its band. `uptime` before and after is recorded.
The strips runners use sparse="auto" (packed.py's cost rule; "formats" records its choice per matrix).
Also: MACs and bytes read per step (IntegerProgram.macs_per_step / bytes_per_step) and flash
(export_c const_bytes, the strips index included). --m4 instead: the Cortex-M4 instruction count
per step under qemu-system-arm -icount (m4_icount.py), dense vs strips4, under the key
MODEL-cortex-m4. Writes benchmarks/results/strips_kernel.json. The same rows time N:M-pruned models, whose
matrices "auto" stores in the panels format (panels.py: balanced per-row sparsity), e.g.
  strips_bench.py --models charlstm-512x2 --key charlstm-512x2-nm-panels --pruned
      benchmarks/runs/strip_pruning/charlstm-512x2/oneshot-nm1ofM-{75,90}
With --own-dense every --pruned model's speed-up is against its own weights run dense (row "dense:NAME"),
not only against the first model's: two models with the same sparse work (1:4 and 16:64 N:M at 75 %:
same MACs, bytes and Cortex-M4 instructions) measured 1.69x and 1.53x against one dense row in one run
(strips_kernel.json at commit c0d371a), 1.59x and 1.60x each against its own in a quieter one.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.measure import streaming_latency  # noqa: E402
from rnnslim.prune import BlockPruning, prune_block_  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

PANEL, RB, KB = 64, 16, 4


def strips4_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """(R, C) bool keep-mask of 16 x 1 strips, a multiple of 4 per (16-row block, 64-column panel)"""
    R, C = w.shape
    nb = -(-R // RB)
    sq = torch.zeros(nb * RB, C)
    sq[:R] = w.detach().float() ** 2
    strip = sq.view(nb, RB, C).sum(1)  # (NB, C)
    chunks = []  # (score, block, columns)
    for b in range(nb):
        for lo in range(0, C, PANEL):
            s = strip[b, lo:lo + PANEL]
            order = s.argsort(descending=True)
            for k in range(0, len(order) - len(order) % KB, KB):
                cols = order[k:k + KB] + lo
                chunks.append((float(s[order[k:k + KB]].sum()), b, cols))
    chunks.sort(key=lambda c: -c[0])
    keep_chunks = round((1 - sparsity) * nb * C / KB)
    mask = torch.zeros(nb, C, dtype=torch.bool)
    for _, b, cols in chunks[:keep_chunks]:
        mask[b, cols] = True
    return mask.repeat_interleave(RB, 0)[:R]


def prune_strips4_(model, sparsity: float) -> None:
    with torch.no_grad():
        for layer in model.rnn.layers:
            for name in ("weight_ih_l0", "weight_hh_l0"):
                w = getattr(layer, name)
                w.mul_(strips4_mask(w, sparsity).to(w.dtype))


def pruned_models(base, sparsity: float) -> dict:
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    prune_strips4_(a, sparsity)
    prune_block_(b, BlockPruning(sparsity=sparsity, block_rows=16, block_cols=1))
    return {"strips4": a, "block16x1": b}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _run_ms(runner: IntegerRunner, tokens: torch.Tensor, calls: int = 3) -> float:
    """best of `calls` runs over `tokens`, thread CPU time per token (ms): time this thread ran, so
    the waits of a preempted run on a loaded machine do not count (cache pollution still does)"""
    best = float("inf")
    for _ in range(calls):
        t0 = time.thread_time_ns()
        runner.run(tokens)
        best = min(best, time.thread_time_ns() - t0)
    return best / len(tokens) / 1e6


def _band(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "band": [min(xs), max(xs)], "rounds": xs}


def time_alternating(runners: dict[str, IntegerRunner], rounds: int, tokens: torch.Tensor) -> dict:
    names = list(runners)
    step = {n: [] for n in names}
    run = {n: [] for n in names}
    fns = {n: r.stream_step_fn() for n, r in runners.items()}
    for n, r in runners.items():  # warm up (caches, page faults)
        r.run(tokens[:64])
    for k in range(rounds):
        for n in names[k % len(names):] + names[:k % len(names)]:
            step[n].append(streaming_latency(step_fn=fns[n], threads=1, steps=200, repeats=1, warmup=20)["median_ms"])
            run[n].append(_run_ms(runners[n], tokens[:64]))
    return {"step_ms": step, "run_ms": run}


def calibrate(variant: str, hidden: int, rounds: int, sparsities=(0.5, 0.75, 0.9, 0.95, 0.999)) -> dict:
    """The cost rule's measurement (packed.py): a 2-layer LSTM (hidden = embed = `hidden`, 30 tokens,
    random weights) whose four matrices are strips4-pruned, run dense / tile-sparse / strips (forced),
    thread CPU time per step (best of `rounds` alternating runs of 32 tokens), with the counts the cost
    model uses: stored tiles, non-empty and all (row block, panel)s."""
    from rnnslim.models.sequence import LayerShape, ModelSpec, SequenceModel

    tokens = torch.randint(0, 30, (32,), generator=torch.Generator().manual_seed(1))
    rows = {}
    for s in sparsities:
        torch.manual_seed(0)
        spec = ModelSpec(cell="lstm", input_kind="embedding", input_size=30, embed_size=hidden,
                         layers=[LayerShape(hidden_size=hidden)] * 2, output_size=29)
        model = SequenceModel(spec).eval()
        prune_strips4_(model, s)
        q = quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER),
                           calibration=[torch.randint(0, 30, (40, 4)) for _ in range(2)])
        runners = {f: IntegerRunner(q, variant, sparse=sp, fold_embedding=False)
                   for f, sp in (("dense", False), ("tiles", True), ("strips", "strips"))}
        best = {f: [] for f in runners}
        for _ in range(rounds):  # alternating
            for f, r in runners.items():
                best[f].append(_run_ms(r, tokens, calls=1))
        best = {f: min(v) for f, v in best.items()}
        mats = {f: [m for ly in r.program.layers for m in (ly.wx, ly.wh)] for f, r in runners.items()}
        sm = mats["strips"]
        rows[str(s)] = {"us_per_step": {f: 1e3 * v for f, v in best.items()},
                        "tiles": {f: sum(m.n_tiles for m in ms) for f, ms in mats.items()},
                        "busy_block_panels": sum(int((m.strip_ptr[1:] > m.strip_ptr[:-1]).sum()) for m in sm),
                        "block_panels": sum(len(m.strip_ptr) - 1 for m in sm)}
        print(variant, hidden, s, rows[str(s)], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["charlstm-512x2", "chargru-512x2"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=[0.75, 0.9])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--variants", nargs="+", default=["native", "portable"])
    ap.add_argument("--m4", action="store_true", help="only the Cortex-M4 instruction count (qemu -icount) and flash")
    ap.add_argument("--pruned", nargs="+", metavar="DIR",
                    help="time these saved (float, pruned) models of --models' first model instead (DIR/model.json)")
    ap.add_argument("--key", help="results key of the --pruned rows (default MODEL-pruned), e.g. MODEL-nm-panels for "
                                  "OBS N:M models, which \"auto\" stores in the panels format (panels.py)")
    ap.add_argument("--own-dense", action="store_true",
                    help="each --pruned model against its own weights run dense (not only the first model's)")
    ap.add_argument("--calibrate", type=int, nargs="*", metavar="HIDDEN",
                    help="only the cost rule's measurement (calibrate()) at these widths (e.g. 256 512)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.calibrate:
        out = {"uptime_before": _uptime()}
        for variant in args.variants:
            out[variant] = {str(h): calibrate(variant, h, args.rounds) for h in args.calibrate}
        out["uptime_after"] = _uptime()
        update_results(RESULTS / "strips_kernel.json", "calibration", out)
        return
    for model_name in args.models:
        base = load_model(MODELS / f"{model_name}.json")
        task = CharLMTask.for_model(base, DATA)
        calib = [b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)]
        int8 = Int8Config(mode=Int8Mode.INTEGER)
        if args.pruned:  # models pruned elsewhere (e.g. strip_pruning_bench.py's), timed as they are
            quantized = {Path(d).name: quantize_int8_(load_model(Path(d) / "model.json"), int8, calibration=calib)
                         for d in args.pruned}
            key = args.key or f"{model_name}-pruned"
        else:
            quantized = {f"{how}-{int(round(100 * s))}": quantize_int8_(m, int8, calibration=calib)
                         for s in args.sparsities for how, m in pruned_models(base, s).items()}
            key = model_name
        if args.m4:
            update_results(RESULTS / "strips_kernel.json", f"{key}-cortex-m4", m4_rows(model_name, quantized))
            continue
        out = {"model": model_name, "threads": 1, "batch": 1, "uptime_before": _uptime(), "rows": {},
               **({"pruned": [str(d) for d in args.pruned]} if args.pruned else {})}
        tokens = torch.randint(0, base.embedding.num_embeddings, (512,), generator=torch.Generator().manual_seed(0))
        for variant in args.variants:
            out["rows"][variant] = time_rows(model_name, variant, quantized, args.rounds, tokens, args.own_dense)
        out["flash_const_bytes"] = flash_bytes(quantized)
        out["uptime_after"] = _uptime()
        print(out["flash_const_bytes"], flush=True)
        update_results(RESULTS / "strips_kernel.json", key, out)


def time_rows(model_name: str, variant: str, quantized: dict, rounds: int, tokens: torch.Tensor,
              own_dense: bool = False) -> dict:
    """dense (the first model, sparse=False) and every model with sparse="auto", checked bit-exact and
    timed in alternating rounds; own_dense: every further model also runs dense ("dense:NAME") and its
    speed-up is against that, a pair timed in the same rounds on the same weights"""
    runners = {"dense": IntegerRunner(next(iter(quantized.values())), variant, sparse=False)}
    if own_dense:
        runners |= {f"dense:{name}": IntegerRunner(q, variant, sparse=False) for name, q in list(quantized.items())[1:]}
    runners |= {name: IntegerRunner(q, variant) for name, q in quantized.items()}  # "auto": the cost rule
    checks = {}
    for name, q in quantized.items():
        a, sa = IntegerRunner(q, variant, sparse=False).run(tokens)
        b, sb = runners[name].run(tokens)
        checks[name] = bool(torch.equal(a, b) and torch.equal(sa.buf, sb.buf))
    timing = time_alternating(runners, rounds, tokens)
    row = {"simd_level": runners["dense"].simd_level, "bit_exact_512_tokens": checks}
    for n, r in runners.items():
        p = r.program
        row[n] = {"step_ms": _band(timing["step_ms"][n]), "run_ms": _band(timing["run_ms"][n]),
                  "macs_per_step": p.macs_per_step(), "bytes_per_step": p.bytes_per_step(),
                  "formats": [m.format for m in p.step_matrices()]}
        if not n.startswith("dense"):
            ref = f"dense:{n}" if f"dense:{n}" in runners else "dense"
            row[n]["dense_row"] = ref
            for kind in ("step_ms", "run_ms"):
                ratios = [d / x for d, x in zip(timing[kind][ref], timing[kind][n])]
                row[n][f"speedup_{kind[:-3]}"] = _band(ratios)
        print(model_name, variant, n, {k: round(row[n][k]["median"], 4) for k in ("step_ms", "run_ms")},
              {k: round(row[n][k]["median"], 2) for k in row[n] if k.startswith("speedup")}, flush=True)
    return row


def flash_bytes(quantized: dict) -> dict:
    """export_c const_bytes: the first model dense, every model with sparse="auto" (indices included)"""
    with tempfile.TemporaryDirectory() as tmp:
        flash = {"dense": export_c(next(iter(quantized.values())), Path(tmp) / "d", name="m", sparse=False).const_bytes}
        for name, q in quantized.items():
            flash[name] = export_c(q, Path(tmp) / name, name="m").const_bytes
    return flash


def m4_rows(model_name: str, quantized: dict) -> dict:
    """Cortex-M4 instructions per step (qemu -icount, m4_icount.py) and flash, dense vs strips ("auto")"""
    from m4_icount import m4_instructions_per_step

    out = {"model": model_name, "uptime_before": _uptime()}
    with tempfile.TemporaryDirectory() as tmp:
        first = next(iter(quantized.values()))
        out["dense"] = m4_instructions_per_step(first, Path(tmp) / "dense", sparse=False)
        for key, q in quantized.items():
            if not key.startswith("block16x1"):  # the strips4 rows (or every --pruned model)
                out[key] = m4_instructions_per_step(q, Path(tmp) / key, sparse="auto")
                out[key]["speedup"] = out["dense"]["instructions_per_step"] / out[key]["instructions_per_step"]
                out[key]["flash_ratio"] = out["dense"]["const_bytes"] / out[key]["const_bytes"]
                print(model_name, key, out[key], flush=True)
    out["uptime_after"] = _uptime()
    return out


if __name__ == "__main__":
    main()
