"""Exported C of a 2:4 model (export_c(sparse="nm24")): carries the 2:4 format (flash counts the
index), equals IntegerRunner bit for bit on the host (portable and native), on the Cortex-M4 and
aarch64 under QEMU, and builds with -Werror -pedantic -Wconversion on every compiler configuration."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from compilers import needs_cc
from nm24_models import nm24_model
from c_warning_configs import CONFIGS, compile_export, skip_reason

from rnnslim.export.c_check import check_on_host, random_streams
from rnnslim.export.c_source import export_c
from rnnslim.export.targets import TARGETS, aarch64_check, cortex_m4_check, toolchain_available
from rnnslim.quantize.int8 import IntegerRunner

HOST_FLAGS = {"portable": ("-O2", "-DRS_PORTABLE"), "native": ("-O3", "-march=native")}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """one 2:4 LSTM export (hidden 70 and 33: odd column groups and row padding) and its runner"""
    q = nm24_model("lstm", hidden=(70, 33))
    d = tmp_path_factory.mktemp("nm24") / "c"
    facts = export_c(q, d, name="tiny", sparse="nm24")
    dense = export_c(q, tmp_path_factory.mktemp("dense") / "c", name="tiny", sparse=False)
    return IntegerRunner(q, "portable"), d, facts, dense


def test_export_carries_the_format_and_flash_counts_the_index(export):
    _, d, facts, dense = export
    text = (d / "tiny.c").read_text()
    assert text.count("_nm_idx[") >= 5 and ".nm_idx = NULL" not in text  # every matrix is 2:4
    assert facts.const_bytes < 0.75 * dense.const_bytes  # 5/8 of the weight bytes, index included


@needs_cc
@pytest.mark.parametrize("flags", list(HOST_FLAGS))
def test_export_equals_runner_on_the_host(export, flags):
    runner, d, _, _ = export
    res = check_on_host(runner, d, random_streams(30, 60, 24), flags=HOST_FLAGS[flags])
    assert res.ok, res.mismatches
    assert res.streams == 60


@pytest.mark.parametrize("target", ["cortex-m4", "aarch64"])
def test_export_equals_runner_on_the_targets(export, target):
    reason = toolchain_available(target)
    if reason:
        pytest.skip(reason)
    runner, d, _, _ = export
    check = cortex_m4_check if target == "cortex-m4" else aarch64_check
    res = check(runner, d, random_streams(30, 40, 16), timeout=300)
    assert res.ok, (res.mismatches, res.command)
    assert res.streams == 40 and res.simd == TARGETS[target].simd


@pytest.mark.slow
def test_export_builds_with_werror_everywhere(export):
    _, d, _, _ = export
    configs = [c for c, (cc, flags, host, _) in CONFIGS.items() if skip_reason(cc, flags, host) is None]
    assert configs
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = [p for p in pool.map(lambda c: compile_export(CONFIGS[c][0], CONFIGS[c][1], d), configs) if p]
    assert not problems, "\n".join(problems[:3])
