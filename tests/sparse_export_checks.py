"""The checks every sparse-format C export test runs on its (runner, export dir) pair: bit-exact with
IntegerRunner on the host builds this CPU can run, on the Cortex-M4 and aarch64 under QEMU, and -Werror
clean on every compiler configuration (tests/export/test_export_c_strips.py and _panels.py)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from c_warning_configs import CONFIGS, compile_export, skip_reason

from rnnslim.export.c_check import check_on_host, random_streams
from rnnslim.export.targets import TARGETS, aarch64_check, cortex_m4_check, toolchain_available
from rnnslim.runtime.build import cpu_fingerprint

HOST_FLAGS = {"portable": ("-O2", "-DRS_PORTABLE"), "native": ("-O3", "-march=native"),
              "avx2": ("-O3", "-mavx2"), "vnni-no-vbmi": ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vnni")}
NEEDS = {"avx2": " avx2", "vnni-no-vbmi": " avx512_vnni"}  # /proc/cpuinfo flags the build needs to run here
TARGET_CHECKS = {"cortex-m4": cortex_m4_check, "aarch64": aarch64_check}


def check_host(runner, export_dir: Path, flags: str) -> None:
    """60 random streams through the export built with HOST_FLAGS[flags] equal the runner's (skip when this
    CPU cannot run that build)."""
    if flags in NEEDS and NEEDS[flags] not in cpu_fingerprint():
        pytest.skip(f"this CPU cannot run the {flags} build")
    res = check_on_host(runner, export_dir, random_streams(30, 60, 24), flags=HOST_FLAGS[flags])
    assert res.ok, res.mismatches
    assert res.streams == 60


def check_target(runner, export_dir: Path, target: str) -> None:
    """40 random streams on `target` under QEMU equal the runner's, with the target's SIMD path."""
    if reason := toolchain_available(target):
        pytest.skip(reason)
    res = TARGET_CHECKS[target](runner, export_dir, random_streams(30, 40, 16), timeout=300)
    assert res.ok and res.streams == 40 and res.simd == TARGETS[target].simd, (res.mismatches, res.command)


def check_werror(export_dir: Path) -> None:
    """The export compiles with -Werror -pedantic -Wconversion on every configuration available here."""
    runnable = [(cc, flags) for cc, flags, host, _ in CONFIGS.values() if skip_reason(cc, flags, host) is None]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = [p for p in pool.map(lambda c: compile_export(c[0], c[1], export_dir), runnable) if p]
    assert runnable and not problems, "\n".join(problems[:3])
