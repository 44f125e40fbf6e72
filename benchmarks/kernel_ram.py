"""RAM and step time of the integer C kernel's chunked step against the kernel before it (issue 21,
"where the peer wins": TFLite Micro's arena vs rnnslim's scratch + state).

    .venv/bin/python benchmarks/kernel_ram.py [--old COMMIT] [--rounds 7]   # -> results/kernel_ram.json

The step used to hold 4 int32 accumulator buffers of G * hidden rows (W_ih x, W_hh h, their sum,
the decoder's); the chunked step (rnnslim_core.h "the chunked step") holds the gate rows of one
chunk of units in two buffers, and the decoder's / input projection's rows in a third. Per model
(the reference int8_integer models: 8 calibration batches of 16 x 64, as kernel_memory.py):
  bytes  scratch and state of IntegerProgram (what the exported C declares: scratch_bytes) now,
         and the old count (4 max_cols + 16 max_rows, max_rows over every layer's G * hidden rows)
  time   per kernel build (native: this CPU's SIMD path; portable: -DRS_PORTABLE), the kernel of
         commit --old (kernel.c + rnnslim_core.h from git, built with the same flags) and the
         working tree's, checked equal bit for bit (logits and state over 256 tokens), then timed in
         alternating rounds (order rotated each round): thread CPU time of IntegerRunner.run over
         64 tokens / 64, best of 3 calls (thread time: this machine is shared and loaded). Per
         configuration the median over rounds and the band [min, max]; the ratio old / new is the
         median of the paired per-round ratios.
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
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, ROOT, update_results  # noqa: E402

from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.quantize.int8 import kernel, runner  # noqa: E402
from rnnslim.quantize.int8.packed import RB, IntegerProgram  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

KERNEL_DIR = "src/rnnslim/quantize/int8"


def old_kernel(commit: str, variant: str, work: Path):
    """The kernel library of `commit` (its kernel.c + rnnslim_core.h), built like the current one."""
    for name in ("kernel.c", "rnnslim_core.h"):
        text = subprocess.run(["git", "show", f"{commit}:{KERNEL_DIR}/{name}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (work / name).write_text(text)
    with mock.patch.object(kernel, "SOURCE", work / "kernel.c"), mock.patch.object(kernel, "CORE", work / "rnnslim_core.h"):
        return kernel.load_kernel.__wrapped__(variant)


def runner_with(model, variant: str, lib) -> IntegerRunner:
    with mock.patch.object(runner, "load_kernel", lambda v: lib):
        return IntegerRunner(model, variant)


def old_scratch_bytes(p: IntegerProgram) -> int:
    """The previous count: 4 int8 code buffers of max_cols, 4 int32 buffers of every layer's rows_p"""
    rows = max([p.max_rows] + [ly.wx.rows_p for ly in p.layers])
    return 4 * p.max_cols + 4 * 4 * rows


def time_rounds(runners: dict[str, IntegerRunner], call, rounds: int, per: int = 1) -> dict:
    """`call(runner)` of every runner once per round, the order rotated each round (load changes hit them
    all): thread CPU time, best of 3 calls, / `per` (ms). Per runner the median and band [min, max] over
    rounds; per runner after the first ("old"), old_over_NAME: the median and band of the paired
    per-round ratios."""
    def once(r: IntegerRunner) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.thread_time_ns()
            call(r)
            best = min(best, time.thread_time_ns() - t0)
        return best / per / 1e6

    names = list(runners)
    ms = {n: [] for n in names}
    for r in runners.values():
        call(r)  # warm up
    for k in range(rounds):
        for n in names[k % len(names):] + names[:k % len(names)]:
            ms[n].append(once(runners[n]))
    out = {n: {"median_ms": statistics.median(v), "band": [min(v), max(v)], "rounds": v} for n, v in ms.items()}
    for n in names[1:]:
        ratio = [o / x for o, x in zip(ms[names[0]], ms[n])]
        out[f"{names[0]}_over_{n}"] = {"median": statistics.median(ratio), "band": [min(ratio), max(ratio)]}
    return out


def time_pair(runners: dict[str, IntegerRunner], rounds: int, tokens: torch.Tensor) -> dict:
    """runners {"old", "new"}: IntegerRunner.run over `tokens`, per token (time_rounds)."""
    return time_rounds(runners, lambda r: r.run(tokens), rounds, per=len(tokens))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["charlstm-256x2", "charlstm-512x2", "chargru-512x2"])
    ap.add_argument("--old", default="733fd397fa9bfeabda90721625ba9984f79d3ff1")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--variants", nargs="+", default=["native", "portable"])
    args = ap.parse_args()
    up = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    out: dict = {"old_commit": args.old, "rounds": args.rounds, "models": {}}
    tokens = torch.randint(0, 60, (256,), generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            base = load_model(MODELS / f"{name}.json").eval()
            task = CharLMTask.for_model(base, DATA)
            q = quantize_int8_(copy.deepcopy(base), Int8Config(mode=Int8Mode.INTEGER),
                               calibration=[b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)])
            p = IntegerProgram.from_model(q)
            row = {"scratch_bytes": p.scratch_bytes(), "state_bytes": 2 * p.state_len,
                   "old_scratch_bytes": old_scratch_bytes(p), "chunk_units": [ly.chunk_units for ly in p.layers],
                   "max_chunk_rows": p.max_chunk, "max_rows": p.max_rows, "max_cols": p.max_cols, "rb": RB}
            row["ram_bytes"] = row["scratch_bytes"] + row["state_bytes"]
            row["old_ram_bytes"] = row["old_scratch_bytes"] + row["state_bytes"]
            for variant in args.variants:
                work = Path(tmp) / f"{name}-{variant}"
                work.mkdir()
                runners = {"old": runner_with(q, variant, old_kernel(args.old, variant, work)),
                           "new": IntegerRunner(q, variant)}
                (a, sa), (b, sb) = runners["old"].run(tokens), runners["new"].run(tokens)
                assert torch.equal(a, b) and torch.equal(sa.buf, sb.buf), f"{name} {variant}: old and new kernels differ"
                row[variant] = {"simd_level": runners["new"].simd_level,
                                "bit_equal": True, **time_pair(runners, args.rounds, tokens[:64])}
                print(name, variant, {k: row[variant][k] for k in ("old", "new", "old_over_new")}, flush=True)
            print(name, {k: v for k, v in row.items() if k not in args.variants}, flush=True)
            out["models"][name] = row
    up.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    out["uptime"] = up
    update_results(RESULTS / "kernel_ram.json", "result", out)


if __name__ == "__main__":
    main()
