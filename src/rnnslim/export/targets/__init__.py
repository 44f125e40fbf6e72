"""Run an exported C model (export_c) on embedded / cross targets and check it bit for bit.

    from rnnslim.export.targets import toolchain_available, cortex_m4_check, aarch64_check
    if toolchain_available("cortex-m4") is None:
        res = cortex_m4_check(IntegerRunner(q), export_dir, random_streams(q_vocab))
        assert res.ok

Targets (TARGETS), each built on c_check.check_on_host (compiler, flags, run prefix):

    cortex-m4         arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2,
                      newlib + semihosting (--specs=rdimon.specs), the start-up and linker script
                      of this package (mps2_an386_startup.c, mps2_an386.ld: 4 MB code/const at
                      0x00000000, 4 MB RAM at 0x20000000), run by
                      qemu-system-arm -M mps2-an386 -nographic -semihosting (RS_SIMD 0: portable C)
    aarch64           aarch64-linux-gnu-gcc -O3 -static, run by qemu-aarch64 (RS_SIMD 1: NEON)
    aarch64-portable  the same with -DRS_PORTABLE (RS_SIMD 0)
    host              this machine's compiler, -O3 -march=native (AVX512-VNNI / AVX2 where present)

The cross toolchains are Debian packages (Target.packages); `toolchain_available(target)`
says None or why a target cannot run here, so tests skip with that reason. QEMU timings
(`timing=` dict) are of an emulator, never a device latency.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnslim.export.c_check import CheckResult, check_on_host

HERE = Path(__file__).resolve().parent
LINKER_SCRIPT = HERE / "mps2_an386.ld"
STARTUP = HERE / "mps2_an386_startup.c"
_TIMER = HERE / "_timed.py"
AN386_CODE_BYTES = 4 * 2**20  # ZBT SSRAM1 at 0x00000000: code + const (our "flash")
AN386_RAM_BYTES = 4 * 2**20  # ZBT SSRAM2&3 at 0x20000000: data + bss + heap + stack

M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
            "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class Target:
    name: str
    cc: str  # compiler (a name on PATH; "" = this machine's compiler, find_compiler())
    size: str  # binutils size of the target
    flags: tuple[str, ...]  # compile flags (model and harness)
    link: tuple[str, ...]  # extra link flags and start-up sources of the check image
    run_prefix: tuple[str, ...]  # the emulator command before the image
    tools: tuple[str, ...]  # executables that must be on PATH
    packages: tuple[str, ...]  # Debian packages providing them
    simd: int | None  # the RS_SIMD the image must report (None: whatever the host has)
    description: str


TARGETS: dict[str, Target] = {
    "cortex-m4": Target(
        "cortex-m4", "arm-none-eabi-gcc", "arm-none-eabi-size", M4_FLAGS,
        ("--specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections", "-T", str(LINKER_SCRIPT), str(STARTUP)),
        # -serial none / -monitor none: no stdio chardev, so QEMU leaves the terminal alone;
        # semihosting output (the harness's printf) still goes to stdout
        ("qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
         "-semihosting", "-kernel"),
        ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"),
        ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"), 0,
        "Cortex-M4F (Armv7E-M, FPv4-SP) on QEMU mps2-an386, newlib semihosting"),
    "aarch64": Target(
        "aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-size", ("-O3",), ("-static",), ("qemu-aarch64",),
        ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-size", "qemu-aarch64"),
        ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user"), 1,
        "AArch64 Linux (static, glibc) on qemu-aarch64, NEON dot products"),
    "aarch64-portable": Target(
        "aarch64-portable", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-size", ("-O3", "-DRS_PORTABLE"),
        ("-static",), ("qemu-aarch64",), ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-size", "qemu-aarch64"),
        ("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user"), 0,
        "AArch64 Linux on qemu-aarch64, portable C loops (-DRS_PORTABLE)"),
    "host": Target(
        "host", "", "size", ("-O3", "-march=native"), (), (), (), (), None,
        "this machine, native flags"),
}


class ToolchainUnavailable(RuntimeError):
    """A target's compiler, C library or emulator is not installed here."""


def _target(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown target {target!r}; known: {sorted(TARGETS)}") from None


def _compiler(t: Target) -> str:
    if t.cc:
        return t.cc
    from rnnslim.runtime.build import find_compiler

    return find_compiler()


def toolchain_available(target: str | Target) -> str | None:
    """None when `target` can be built and run here, else the reason (what is missing and
    which Debian packages provide it)."""
    t = _target(target)
    if t.name == "host":
        from rnnslim.runtime.build import CompilerUnavailable, find_compiler

        try:
            find_compiler()
        except CompilerUnavailable as e:
            return str(e)
        return None
    missing = [tool for tool in t.tools if shutil.which(tool) is None]
    if missing:
        return f"{t.name}: {', '.join(missing)} not found (Debian packages: {' '.join(t.packages)})"
    # the compiler is there; is its C library? (-print-file-name echoes the bare name when not found)
    probes = {"cortex-m4": [("rdimon.specs", ()), ("librdimon.a", M4_FLAGS)],
              "aarch64": [("libc.a", ())], "aarch64-portable": [("libc.a", ())]}[t.name]
    for lib, flags in probes:
        try:
            out = subprocess.run([t.cc, *flags, f"-print-file-name={lib}"], capture_output=True, text=True,
                                 timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            return f"{t.name}: {t.cc} does not run ({e})"
        if not out or not Path(out).is_file():
            return f"{t.name}: {t.cc} finds no {lib} (Debian packages: {' '.join(t.packages)})"
    return None


def target_check(target: str | Target, runner, export_dir: str | Path, streams: np.ndarray,
                 timeout: float = 600, timing: dict | None = None) -> CheckResult:
    """Build export_dir + the hash harness for `target`, run it (under its emulator) and
    compare with `runner` (IntegerRunner) on `streams`. The image is export_dir/check_main.exe
    (overwritten by the next check). If `timing` is a dict it receives the run's wall
    seconds ("wall_s", emulator start-up included), "elf" and "exit_code"."""
    t = _target(target)
    reason = toolchain_available(t)
    if reason:
        raise ToolchainUnavailable(reason)
    prefix = t.run_prefix
    stamp = None
    if timing is not None:
        stamp = Path(tempfile.mkstemp(prefix="rnnslim_timed_", suffix=".txt")[1])
        prefix = (sys.executable, str(_TIMER), str(stamp), *prefix)
    try:
        res = check_on_host(runner, export_dir, streams, cc=_compiler(t), flags=(*t.flags, *t.link),
                            run_prefix=prefix, timeout=timeout)
        if stamp is not None:
            wall, rc = stamp.read_text().split()
            timing.update(wall_s=float(wall), exit_code=int(rc), elf=str(Path(export_dir) / "check_main.exe"),
                          target=t.name)
    finally:
        if stamp is not None:
            stamp.unlink(missing_ok=True)
    return res  # res.simd: the dot-product code that ran (Target.simd: the one the target stands for)


def cortex_m4_check(runner, export_dir: str | Path, streams: np.ndarray, timeout: float = 600,
                    timing: dict | None = None) -> CheckResult:
    """Bit-exactness on a Cortex-M4F under qemu-system-arm -M mps2-an386 (portable C)."""
    return target_check("cortex-m4", runner, export_dir, streams, timeout, timing)


def aarch64_check(runner, export_dir: str | Path, streams: np.ndarray, portable: bool = False,
                  timeout: float = 600, timing: dict | None = None) -> CheckResult:
    """Bit-exactness on AArch64 under qemu-aarch64: NEON (RS_SIMD 1) or, with portable=True,
    the portable loops (-DRS_PORTABLE)."""
    return target_check("aarch64-portable" if portable else "aarch64", runner, export_dir, streams, timeout,
                        timing)


def _manifest(export_dir: Path) -> dict:
    path = Path(export_dir) / "model.json"  # export_c's manifest
    if not path.is_file():
        raise FileNotFoundError(f"{export_dir} is not an rnnslim C export (no model.json)")
    return json.loads(path.read_text())


def _size_tool(elf: Path) -> str:
    head = elf.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        raise ValueError(f"{elf} is not an ELF file")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return {0x28: "arm-none-eabi-size", 0xB7: "aarch64-linux-gnu-size"}.get(machine, "size")


def parse_size_output(text: str) -> dict[str, int]:
    """{'text', 'data', 'bss'} from binutils `size` (Berkeley format) output of one file."""
    lines = [ln.split() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0][:3] != ["text", "data", "bss"]:
        raise ValueError(f"unexpected size output: {text!r}")
    text_b, data_b, bss_b = (int(v) for v in lines[1][:3])
    return {"text": text_b, "data": data_b, "bss": bss_b}


def section_sizes(elf: str | Path, size_tool: str | None = None) -> dict[str, int]:
    """Section sizes of an ELF image or object: text (code + const data: flash), data
    (initialized RAM, also stored in flash), bss (zeroed RAM), from `arm-none-eabi-size` /
    `aarch64-linux-gnu-size` / `size` (chosen by the ELF machine unless given)."""
    elf = Path(elf)
    tool = size_tool or _size_tool(elf)
    proc = subprocess.run([tool, str(elf)], capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"{tool} {elf} failed: {proc.stderr.strip()}")
    return parse_size_output(proc.stdout)


def model_sizes(target: str | Target, export_dir: str | Path, timeout: float = 600) -> dict[str, int]:
    """Section sizes of the model alone (NAME.c compiled with the target's flags, no
    harness, no C library): text = step code + const arrays, bss = scratch buffers."""
    t = _target(target)
    reason = toolchain_available(t)
    if reason:
        raise ToolchainUnavailable(reason)
    export_dir = Path(export_dir)
    name = _manifest(export_dir)["name"]
    obj = export_dir / f"{name}.{t.name}.o"
    cmd = [_compiler(t), "-std=c99", "-ffp-contract=off", *t.flags, "-I", str(export_dir), "-c", "-o", str(obj),
           str(export_dir / f"{name}.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"compiling {name}.c for {t.name} failed:\n{proc.stderr[-3000:]}")
    try:
        return section_sizes(obj, t.size)
    finally:
        obj.unlink(missing_ok=True)


__all__ = [
    "AN386_CODE_BYTES", "AN386_RAM_BYTES", "LINKER_SCRIPT", "STARTUP", "TARGETS", "Target", "ToolchainUnavailable",
    "aarch64_check", "cortex_m4_check", "model_sizes", "parse_size_output", "section_sizes", "target_check",
    "toolchain_available",
]
