"""Embedded proof: an exported int8 model runs bit-exactly on Cortex-M4 and AArch64 (QEMU).

    .venv/bin/python benchmarks/embedded_bench.py                         # charlstm-256x2 and charlstm-512x2
    .venv/bin/python benchmarks/embedded_bench.py --models charlstm-256x2 --model-path runs/best/model.json
    .venv/bin/python benchmarks/embedded_bench.py --models charlstm-512x2 --tile-prune 0.75

Per model: the reference float model converted to fully integer int8 (calibrated on 8
training batches of 16 x 64 characters, as benchmarks/quantize_bench.py does; a
--model-path that is already integer int8 is used as it is), exported with
rnnslim.export.export_c, then for each target

    host              this machine's cc -O3 -march=native (AVX512-VNNI / AVX2 dot products)
    cortex-m4         arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2,
                      qemu-system-arm -M mps2-an386 -semihosting (portable C, RS_SIMD 0)
    aarch64           aarch64-linux-gnu-gcc -O3 -static, qemu-aarch64 (NEON, RS_SIMD 1)
    aarch64-portable  the same with -DRS_PORTABLE

the bit-exactness check against IntegerRunner (100 random token streams from a reset
state; per stream an FNV-1a hash of every logit and of the final state), the section sizes
(text = code + const, data, bss) of the model object alone and of the linked check image,
and the manifest's const (flash) / scratch / state (RAM) bytes. The AN386 image has 4 MB
of code memory at 0x00000000: a model whose text does not fit is reported as not fitting
(the link fails with "region `FLASH' overflowed" by N bytes); run a pruned model through
--model-path, or --tile-prune 0.75 for an untuned tile-sparse stand-in (16 x 4 tiles of the
int8 recurrent matrices zeroed by magnitude: the layout of the block-pruned deployment
recipe, for the size and exactness proof only, its quality is not measured).

Timings: wall time of the emulator process (QEMU start-up included) divided by the steps
it ran. They are EMULATED and informative only: not a device latency (QEMU's TCG neither
models the M4's cycle timing nor its memory wait states).

Missing cross tools are installed with apt-get (Debian packages of rnnslim.export.targets
TARGETS; sudo when not root) unless --no-install. Writes benchmarks/results/embedded_<model>.json.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, MODELS, RESULTS, update_results  # noqa: E402

from rnnslim.export.c_check import random_streams  # noqa: E402
from rnnslim.export.c_source import export_c  # noqa: E402
from rnnslim.export.targets import (  # noqa: E402
    AN386_CODE_BYTES,
    AN386_RAM_BYTES,
    STARTUP,
    TARGETS,
    model_sizes,
    section_sizes,
    target_check,
    toolchain_available,
)
from rnnslim.io.format import load_model  # noqa: E402
from rnnslim.quantize.int8 import Int8Config, Int8Mode, IntegerRunner, quantize_int8_  # noqa: E402
from rnnslim.quantize.int8.runner import check_integer_model  # noqa: E402
from rnnslim.tasks.charlm import CharLMTask  # noqa: E402

ORDER = ("host", "cortex-m4", "aarch64", "aarch64-portable")


def ensure_packages(targets: list[str], install: bool) -> dict:
    """apt-get install the Debian packages of the targets whose tools are missing."""
    missing = {t: toolchain_available(t) for t in targets}
    missing = {t: r for t, r in missing.items() if r}
    if not missing:
        return {"installed": [], "missing": {}}
    pkgs = sorted({p for t in missing for p in TARGETS[t].packages})
    if not install or shutil.which("apt-get") is None:
        print(f"missing cross tools, not installing: {missing}", flush=True)
        return {"installed": [], "missing": missing}
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return {"installed": [], "missing": missing, "error": "not root and no sudo: cannot apt-get install"}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"apt-get install {' '.join(pkgs)}", flush=True)
    subprocess.run([*sudo, "apt-get", "update"], env=env, check=False)
    proc = subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *pkgs], env=env)
    still = {t: toolchain_available(t) for t in missing}
    return {"installed": pkgs if proc.returncode == 0 else [], "apt_get_rc": proc.returncode,
            "missing": {t: r for t, r in still.items() if r}}


def integer_model(path: Path, calib_batches: int):
    """The model at `path` as fully integer int8 (converted with calibration unless it is already)."""
    model = load_model(path)
    try:
        check_integer_model(model)
        return model, {"converted": False, "note": "already integer int8, used as saved"}
    except ValueError:
        pass
    task = CharLMTask.for_model(model, DATA)
    calib = [b.inputs for b in task.calibration_batches(calib_batches, batch_size=16, seq_len=64)]
    t0 = time.perf_counter()
    quantize_int8_(model, Int8Config(mode=Int8Mode.INTEGER), calibration=calib)
    return model, {"converted": True, "mode": "integer", "calibration": f"{calib_batches} training batches "
                   f"x 16 x 64 characters", "seconds": round(time.perf_counter() - t0, 2)}


def tile_prune_(model, fraction: float):
    """Zero the `fraction` of 16 x 4 tiles with the smallest L1 norm in every recurrent int8
    matrix (the C kernel's tile, so export_c stores them tile-sparse). No fine-tuning: a
    stand-in with the layout of the block-pruned deployment recipe, for the size and the
    bit-exactness proof only; its quality is not measured and not meant to be used."""
    with torch.no_grad():
        for layer in model.rnn.layers:
            for name in ("w_ih", "w_hh"):
                w = getattr(layer, name)
                R, C = w.shape
                pad = torch.zeros(-(-R // 16) * 16, -(-C // 4) * 4, dtype=torch.int64)
                pad[:R, :C] = w.to(torch.int64).abs()
                score = pad.reshape(pad.shape[0] // 16, 16, pad.shape[1] // 4, 4).sum((1, 3))
                k = int(round(fraction * score.numel()))
                drop = torch.zeros(score.numel(), dtype=torch.bool)
                drop[score.flatten().argsort()[:k]] = True
                keep = ~drop.reshape(score.shape)
                mask = keep.repeat_interleave(16, 0).repeat_interleave(4, 1)[:R, :C]
                w.mul_(mask.to(w.dtype))
    return model


def run_target(target: str, runner, out: Path, facts, args) -> dict:
    """Sizes, bit-exactness check and emulated timing of one export on one target."""
    t = TARGETS[target]
    row: dict = {"description": t.description,
                 "compiler_flags": " ".join((*t.flags, *t.link)).replace(str(STARTUP.parent), "rnnslim/export/targets"),
                 "emulator": " ".join(t.run_prefix) or None}
    reason = toolchain_available(target)
    if reason:
        row["skipped"] = reason
        print(f"  {target}: skipped ({reason})", flush=True)
        return row
    try:
        row["model_object_sizes"] = model_sizes(target, out)
    except RuntimeError as e:
        row["error"] = str(e)[-2000:]
        return row
    if target == "cortex-m4":
        mo = row["model_object_sizes"]
        row["an386_code_bytes"] = AN386_CODE_BYTES
        row["an386_ram_bytes"] = AN386_RAM_BYTES
        row["model_fits_an386_code"] = mo["text"] + mo["data"] <= AN386_CODE_BYTES
    steps = args.m4_steps if target == "cortex-m4" else args.steps
    streams = random_streams(facts.vocab, args.streams, steps)
    timing: dict = {}
    t0 = time.perf_counter()
    try:
        res = target_check(target, runner, out, streams, timeout=args.timeout, timing=timing)
    except RuntimeError as e:  # compile / link failure: on the M4 a model larger than the code memory
        msg = str(e)
        row["error"] = msg[-2000:]
        over = re.search(r"region `FLASH' overflowed by (\d+) bytes", msg)
        if over:
            row["model_fits_an386_code"] = False
            row["an386_code_overflow_bytes"] = int(over.group(1))
        print(f"  {target}: FAILED to build: {msg[-300:]}", flush=True)
        return row
    except subprocess.TimeoutExpired:
        row["error"] = f"timed out after {args.timeout} s"
        print(f"  {target}: timed out", flush=True)
        return row
    row["check"] = res.to_dict()
    row["check"]["expected_simd"] = t.simd
    row["image_sizes"] = section_sizes(timing["elf"], t.size)
    n_steps = res.streams * res.steps
    row["timing"] = {
        "kind": "emulated (QEMU)" if t.run_prefix else "native (this machine)",
        "note": "wall time of the whole run (emulator start-up included) / steps; not a device latency"
        if t.run_prefix else "wall time of the whole check process / steps (printf included)",
        "run_wall_s": round(timing["wall_s"], 4), "steps": n_steps,
        "wall_us_per_step": round(1e6 * timing["wall_s"] / n_steps, 2),
        "exit_code": timing["exit_code"]}
    row["check_seconds_total"] = round(time.perf_counter() - t0, 2)
    print(f"  {target}: bit-exact {res.ok} ({res.streams} streams x {res.steps} steps, simd {res.simd}), "
          f"image {row['image_sizes']}, model {row['model_object_sizes']}, "
          f"{row['timing']['wall_us_per_step']:.1f} us/step {row['timing']['kind']}", flush=True)
    return row


def bench_model(key: str, path: Path, args) -> dict:
    model, conversion = integer_model(path, args.calib_batches)
    if args.tile_prune:
        tile_prune_(model, args.tile_prune)
        key = f"{key}-tiles{round(100 * args.tile_prune)}-untuned"
        conversion["tile_prune"] = {
            "fraction": args.tile_prune, "tile": "16 x 4", "matrices": "every recurrent layer's w_ih and w_hh",
            "criterion": "smallest L1 norm per matrix, on the int8 codes", "fine_tuned": False,
            "note": "size / bit-exactness stand-in for a block-pruned model; quality not measured, not for use"}
    work = Path(tempfile.mkdtemp(prefix=f"embedded_{key}_"))
    out = work / "c"
    t0 = time.perf_counter()
    facts = export_c(model, out, name=key, source=str(path))
    manifest = facts.to_dict()
    manifest.pop("files", None)
    print(f"{key}: exported in {time.perf_counter() - t0:.1f} s, const {facts.const_bytes:,} B, "
          f"scratch {facts.scratch_bytes:,} B, state {facts.state_bytes:,} B", flush=True)
    runner = IntegerRunner(model)
    rows = {target: run_target(target, runner, out, facts, args) for target in args.targets}
    m4 = rows.get("cortex-m4", {})
    if m4.get("model_fits_an386_code") is False:
        m4["note"] = ("the model's const arrays + code exceed the AN386's 4 MB code memory (ZBT SSRAM1 at "
                      "0x00000000): not run on the M4; use a smaller (pruned / structured) model")
    shutil.rmtree(work, ignore_errors=True)
    return {"model": key, "source": str(path), "conversion": conversion, "manifest": manifest,
            "streams": args.streams, "steps_per_stream": {t: (args.m4_steps if t == "cortex-m4" else args.steps)
                                                          for t in args.targets},
            "targets": rows,
            "bit_exact": {t: r.get("check", {}).get("bit_exact") for t, r in rows.items()}}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=["charlstm-256x2", "charlstm-512x2"],
                    help="reference models in shared/models (converted to integer int8)")
    ap.add_argument("--model-path", action="append", default=[],
                    help="another model (.json artifact; float or already integer int8), e.g. the best "
                         "compressed one; its result file is named after the file's stem, or after the run for "
                         "RUN/model/model.json")
    ap.add_argument("--targets", nargs="*", default=list(ORDER), choices=list(ORDER))
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--steps", type=int, default=24, help="steps per stream (host, aarch64)")
    ap.add_argument("--m4-steps", type=int, default=24, help="steps per stream on the Cortex-M4 (slow QEMU)")
    ap.add_argument("--calib-batches", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=900, help="per compile / emulator run, seconds")
    ap.add_argument("--tile-prune", type=float, default=0.0,
                    help="zero this fraction of 16x4 tiles of the int8 recurrent matrices (no fine-tuning: a "
                         "tile-sparse stand-in for size and exactness only); results named MODEL-tilesNN-untuned")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing cross tools")
    args = ap.parse_args()
    torch.set_num_threads(1)
    packages = ensure_packages([t for t in args.targets if t != "host"], install=not args.no_install)
    def label(p: Path) -> str:  # a run's final model (RUN/model/model.json) is named after the run
        run = p.parent.name == "model" and p.stem == "model"  # runs/MODEL/RUN/model/model.json
        return f"{p.parents[2].name}-{p.parents[1].name}" if run else p.stem

    jobs = [(m, MODELS / f"{m}.json") for m in args.models] + [(label(Path(p)), Path(p)) for p in args.model_path]
    for key, path in jobs:
        result = bench_model(key, path, args)
        result["packages"] = packages
        target = RESULTS / f"embedded_{result['model']}.json"
        update_results(target, "embedded", result)
        print(f"wrote {target}", flush=True)


if __name__ == "__main__":
    main()
