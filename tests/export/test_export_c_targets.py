"""Exported C on embedded / cross targets under QEMU equals IntegerRunner bit for bit:
Cortex-M4F (qemu-system-arm -M mps2-an386, semihosting), AArch64 NEON and portable
(qemu-aarch64). Each test skips, with the reason, where the cross tools are not installed
(CI): `toolchain_available` names the missing tools and their Debian packages."""

from __future__ import annotations

import pytest
from int8_models import integer_model, zero_tiles

from rnnslim.export.c_check import random_streams
from rnnslim.export.c_source import export_c
from rnnslim.export.targets import (
    TARGETS,
    ToolchainUnavailable,
    aarch64_check,
    cortex_m4_check,
    model_sizes,
    parse_size_output,
    section_sizes,
    target_check,
    toolchain_available,
)
from rnnslim.quantize.int8 import IntegerRunner

CROSS = ["cortex-m4", "aarch64", "aarch64-portable"]
MODELS = {"lstm": ("lstm", False), "gru": ("gru", False), "lstm-tile-sparse": ("lstm", True),
          "gru-bidirectional": ("gru", False)}  # whole sequences: the harness calls NAME_run


def _needs(target: str):
    reason = toolchain_available(target)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One export per model (hidden 70 and 33: vector loops and scalar tails), shared by the targets."""
    out = {}
    for key, (cell, sparse) in MODELS.items():
        q = integer_model(cell, hidden=(70, 33), bidirectional=key.endswith("bidirectional"))
        if sparse:
            q = zero_tiles(q)
        d = tmp_path_factory.mktemp(key) / "c"
        facts = export_c(q, d, name="tiny")
        assert bool(facts.tile_sparse) == sparse
        out[key] = (IntegerRunner(q, "portable"), d, facts)
    return out


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("target", [pytest.param(t, marks=_needs(t)) for t in CROSS])
def test_target_equals_runner_on_100_streams(exports, target, model):
    runner, d, _ = exports[model]
    timing: dict = {}
    if target == "cortex-m4":
        res = cortex_m4_check(runner, d, random_streams(30, 100, 24), timeout=300, timing=timing)
    else:
        res = aarch64_check(runner, d, random_streams(30, 100, 24), portable=target.endswith("portable"),
                            timeout=300, timing=timing)
    assert res.ok, (res.mismatches, res.command)
    assert res.streams == 100 and res.steps == 24
    assert res.simd == TARGETS[target].simd  # M4 and -DRS_PORTABLE: portable C; aarch64: NEON
    assert timing["wall_s"] > 0 and timing["exit_code"] == 0  # QEMU ended through semihosting SYS_EXIT
    sizes = section_sizes(timing["elf"])
    assert sizes["text"] > 0 and sizes["bss"] > 0


@_needs("cortex-m4")
def test_cortex_m4_detects_a_wrong_model(exports):
    """A check that cannot fail proves nothing: the LSTM's hashes against the GRU's runner."""
    runner = exports["gru"][0]
    d = exports["lstm"][1]
    res = cortex_m4_check(runner, d, random_streams(30, 5, 6), timeout=120)
    assert not res.ok and res.simd == 0


@_needs("cortex-m4")
def test_cortex_m4_model_sizes(exports):
    _, d, facts = exports["lstm"]
    sizes = model_sizes("cortex-m4", d)
    # const arrays are read-only data (counted in text by size(1)), the scratch buffers are bss
    assert sizes["text"] > facts.const_bytes and sizes["data"] == 0
    assert facts.scratch_bytes <= sizes["bss"] < facts.scratch_bytes + 64 * 8


def test_size_output_parsing_and_unknown_target():
    out = ("   text\t   data\t    bss\t    dec\t    hex\tfilename\n"
           " 100856\t   2492\t   5872\t 109220\t  1aaa4\tm4.elf\n")
    assert parse_size_output(out) == {"text": 100856, "data": 2492, "bss": 5872}
    with pytest.raises(ValueError, match="unexpected"):
        parse_size_output("nonsense")
    with pytest.raises(ValueError, match="unknown target"):
        toolchain_available("riscv")


def test_missing_toolchain_is_reported(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = toolchain_available("cortex-m4")
    assert reason and "arm-none-eabi-gcc" in reason and "libnewlib-arm-none-eabi" in reason
    with pytest.raises(ToolchainUnavailable, match="qemu-aarch64"):  # before anything is built or run
        target_check("aarch64", None, tmp_path, random_streams(30, 2, 2))
