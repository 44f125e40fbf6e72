"""The C compiler configurations the exports must build in with -Werror (tests/export/
test_export_c_warnings.py and every format test that checks its own C): compilers, flags,
which host each runs on, and the compile step itself."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

# -Werror on everything -Wall / -Wextra / -pedantic enable, plus what embedded builds commonly add
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow", "-Wundef",
            "-Wdouble-promotion", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual", "-Wvla")
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686")
AVX512 = ("-mavx512f", "-mavx512bw", "-mavx512vnni")
M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
A9_NEON = ("-mcpu=cortex-a9", "-marm", "-mfpu=neon", "-mfloat-abi=hard")

# name -> (compiler, flags, host: "x86" / "not x86" / None, float exports too); the int8 core picks
# its SIMD path from the flags. "native" runs where it is not x86 (aarch64: NEON); on x86 it would
# repeat one of the explicit AVX2 / AVX-512 configurations.
CONFIGS = {
    "gcc-portable-O2": ("gcc", ("-O2", "-DRS_PORTABLE"), None, True),
    "gcc-native-O3": ("gcc", ("-O3", "-march=native"), "not x86", False),
    "gcc-avx2-O3": ("gcc", ("-O3", "-mavx2"), "x86", False),
    "gcc-avx512vnni-O3": ("gcc", ("-O3", *AVX512), "x86", False),
    "clang-portable-O2": ("clang", ("-O2", "-DRS_PORTABLE"), None, True),
    "clang-avx512vnni-O3": ("clang", ("-O3", *AVX512), "x86", False),
    "arm-none-eabi-cortex-m4-O2": ("arm-none-eabi-gcc", ("-O2", *M4), None, True),
    "arm-none-eabi-cortex-a9-neon-O3": ("arm-none-eabi-gcc", ("-O3", *A9_NEON), None, False),
    "aarch64-neon-O3": ("aarch64-linux-gnu-gcc", ("-O3",), None, False),
}


def skip_reason(cc: str, flags: tuple[str, ...], host: str | None) -> str | None:
    if shutil.which(cc) is None:
        return f"{cc} is not installed"
    if host == "x86" and not X86:
        return f"{' '.join(flags)} are x86 flags; this host is {platform.machine()}"
    if host == "not x86" and X86:
        return "on x86, -march=native is one of the explicit AVX2 / AVX-512 configurations"
    return None


def compile_export(cc: str, flags: tuple[str, ...], directory: Path) -> str | None:
    """None when NAME.c (and NAME_vocab.c, where there is one) compiles cleanly, else the compiler's complaint"""
    for source in (directory / f"{directory.name}.c", directory / f"{directory.name}_vocab.c"):
        if not source.exists():
            continue
        cmd = [cc, *WARNINGS, *flags, "-c", str(source), "-o", str(directory / f"{source.stem}.{os.getpid()}.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or proc.stderr.strip():
            return f"{' '.join(cmd)}\n{proc.stderr[-2000:]}"
    return None
