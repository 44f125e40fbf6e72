"""Flash and step time of the integer C kernel with half sigmoid / tanh tables and VNNI-only row
corrections, against the kernel before them (issue 21, "where the peer wins": the .tflite file vs
rnnslim's C arrays of the small classifiers).

    .venv/bin/python benchmarks/kernel_flash.py [--old COMMIT] [--rounds 9]   # -> results/kernel_flash.json

Two changes, both bit-exact (rnnslim_core.h): an export's tables keep their lower 513 of 1,025 entries
(the upper half mirrors them exactly, fixedpoint.half_table; the host kernel keeps whole tables), and the VNNI row corrections (4 B per
matrix row) are defined only in AVX-512 VNNI builds of an export (RS_CORR). Per model of the peer
table (the three reference char models, int8_integer with 8 calibration batches of 16 x 64 as
kernel_ram.py; the three classifiers as benchmarks/peers/reference_classifier.py builds them):
  flash  export_c's const_bytes now (what a Cortex-M4 / aarch64 / portable build holds) and
         vnni_bytes (what an AVX-512 VNNI build adds); the same saved model exported by commit
         --old's exporter (a git worktree of it, in a subprocess) for the bytes before
  time   three kernels per build (native: this CPU's SIMD path; portable: -DRS_PORTABLE): commit
         --old's (kernel.c + rnnslim_core.h from git, built with the same flags), the working tree's
         host kernel (IntegerRunner: RS_FULL_TABLES, whole tables, no mirroring) and the working tree's
         built as an export is (half tables, every lookup mirrored: the exported C's cost), checked
         equal bit for bit, then timed in rounds (order rotated each round): thread CPU time of 64
         tokens (char models) or one whole test sequence (classifiers), best of 3 calls; the median
         and band [min, max] per kernel, and the median of the paired per-round ratios against --old.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from common import DATA, MODELS, RESULTS, ROOT, update_results  # noqa: E402
from kernel_ram import old_kernel, runner_with, time_rounds  # noqa: E402

from rnnslim.capture import capture  # noqa: E402
from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.io.format import load_model, save_model  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

CHAR_MODELS = ("charlstm-256x2", "charlstm-512x2", "chargru-512x2")
CLASSIFIERS = ("basicmotions-lstm32", "japanesevowels-lstm48", "japanesevowels-gru64")
# the last commit before the half tables: the kernel and exporter as the peer runs recorded them
OLD = "8039229"
OLD_EXPORT = """import sys
from rnnslim.export.c_source import export_c
from rnnslim.io.format import load_model
print(export_c(load_model(sys.argv[1]), sys.argv[2], name="model").const_bytes)
"""


def char_model(name: str):
    """(int8 integer model, the call timed: runner -> logits, what that call runs)."""
    base = load_model(MODELS / f"{name}.json").eval()
    task = CharLMTask.for_model(base, DATA)
    q = quantize_int8_(copy.deepcopy(base), Int8Config(mode=Int8Mode.INTEGER),
                       calibration=[b.inputs for b in task.calibration_batches(8, batch_size=16, seq_len=64)])
    tokens = torch.randint(0, 60, (64,), generator=torch.Generator().manual_seed(0))  # as kernel_ram.py
    return q, lambda r: r.run(tokens)[0], "64 tokens"


def classifier(name: str):
    from reference_classifier import integer_model, trained

    module, _, data, _ = trained(name)
    q, _ = integer_model(capture(module, (data.x_train[:8],)), data)
    x = data.x_test[0]
    return q, lambda r: r.run_sequence(x), f"one test sequence ({x.shape[0]} steps)"


def half_table_kernel(variant: str, work: Path):
    """The working tree's kernel built as an export builds it: without RS_FULL_TABLES, copying the first LUT_HALF
    entries of each table the runner passes (= the lower half an export stores), so every lookup mirrors."""
    from rnnslim.quantize.int8 import kernel

    src = kernel.SOURCE.read_text()
    define = "#define RS_FULL_TABLES"
    if src.count(define) != 1 or src.count("sizeof(int16_t) * LUT_SIZE") != 2:
        raise RuntimeError("kernel.c changed: update half_table_kernel")
    src = "\n".join(line for line in src.splitlines() if not line.startswith(define)) + "\n"
    (work / "kernel.c").write_text(src.replace("sizeof(int16_t) * LUT_SIZE", "sizeof(int16_t) * LUT_HALF"))
    for header in (kernel.CORE, kernel.PANELS):
        (work / header.name).write_text(header.read_text())
    with mock.patch.object(kernel, "SOURCE", work / "kernel.c"), mock.patch.object(kernel, "CORE", work / kernel.CORE.name), \
            mock.patch.object(kernel, "PANELS", work / kernel.PANELS.name):
        return kernel.load_kernel.__wrapped__(variant)


def old_const_bytes(model, old: str, work: Path) -> int:
    """export_c's const_bytes for `model` at commit `old` (a detached worktree, run in a subprocess)."""
    tree = work / "old-tree"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), old], cwd=ROOT, check=True,
                       capture_output=True)
    saved = work / "model-for-old"
    save_model(model, saved)
    out = subprocess.run([sys.executable, "-c", OLD_EXPORT, str(saved), str(work / "old-export")], check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"})
    subprocess.run(["rm", "-rf", str(saved), str(work / "old-export")], check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=[*CHAR_MODELS, *CLASSIFIERS])
    ap.add_argument("--old", default=OLD)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--variants", nargs="+", default=["native", "portable"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    up = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    out: dict = {"old_commit": args.old, "rounds": args.rounds, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            for name in args.models:
                q, call, what = classifier(name) if name in CLASSIFIERS else char_model(name)
                facts = export_c(q, work / f"{name}-c", name="model")
                row = {"const_bytes": facts.const_bytes, "vnni_bytes": facts.vnni_bytes,
                       "old_const_bytes": old_const_bytes(q, args.old, work), "timed": what}
                for variant in args.variants:
                    vdir = work / f"{name}-{variant}"
                    vdir.mkdir()
                    (vdir / "half").mkdir()
                    runners = {"old": runner_with(q, variant, old_kernel(args.old, variant, vdir)),
                               "new": IntegerRunner(q, variant),
                               "half": runner_with(q, variant, half_table_kernel(variant, vdir / "half"))}
                    outs = {k: call(r) for k, r in runners.items()}
                    assert all(torch.equal(outs["old"], o) for o in outs.values()), f"{name} {variant}: kernels differ"
                    row[variant] = {"simd_level": runners["new"].simd_level, "bit_equal": True,
                                    **time_rounds(runners, call, args.rounds)}
                    print(name, variant, {k: row[variant][k]["median_ms"] for k in runners},
                          {k: row[variant][k]["median"] for k in ("old_over_new", "old_over_half")}, flush=True)
                print(name, {k: v for k, v in row.items() if k not in args.variants}, flush=True)
                out["models"][name] = row
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(work / "old-tree")], cwd=ROOT,
                           capture_output=True)
    up.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    out["uptime"] = up
    update_results(RESULTS / "kernel_flash.json", "result", out)
    print(json.dumps({k: {f: v[f] for f in ("const_bytes", "vnni_bytes", "old_const_bytes")}
                      for k, v in out["models"].items()}, indent=1))


if __name__ == "__main__":
    main()
