"""Exported C of a panels model (export_c(sparse="panels") and "auto" on N:M-pruned matrices): carries
the panels format (flash counts the offsets; the manifest names every sparse matrix and its format;
the exported rnnslim_core.h carries rnnslim_panels.h inline), equals IntegerRunner bit for bit on the host (portable,
native = AVX512-VBMI + VNNI here, AVX2, AVX512-VNNI without VBMI), on the Cortex-M4 and aarch64 under
QEMU, and builds with -Werror -pedantic -Wconversion on every compiler configuration."""

from __future__ import annotations

import json

import pytest
from compilers import needs_cc
from panels_models import nm_model
from sparse_export_checks import HOST_FLAGS, TARGET_CHECKS, check_host, check_target, check_werror

from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime.manifest import ExportManifest


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """one N:M 1:4 LSTM export (hidden 70 and 33: two panels, a partial one, row padding) and its runner"""
    q = nm_model("lstm", 1, 4, hidden=(70, 33))
    d = tmp_path_factory.mktemp("panels") / "c"
    facts = export_c(q, d, name="tiny", sparse="panels", fold_embedding=False)
    dense = export_c(q, tmp_path_factory.mktemp("dense") / "c", name="tiny", sparse=False, fold_embedding=False)
    return IntegerRunner(q, "portable", fold_embedding=False, sparse="panels"), d, facts, dense


def test_export_carries_the_format_and_flash_counts_the_index(export):
    _, d, facts, dense = export
    text = (d / "tiny.c").read_text()
    assert text.count("_panel_idx[") == 5 and ".panel_ptr = NULL" not in text  # every matrix is panels
    assert not (d / "rnnslim_panels.h").exists() and "rs_panels_block" in (d / "rnnslim_core.h").read_text()
    assert facts.const_bytes < 0.75 * dense.const_bytes  # 1:4 keeps 1/4 of the codes, plus a byte offset each
    names = ["rnn.layers.0.w_ih", "rnn.layers.0.w_hh", "rnn.layers.1.w_ih", "rnn.layers.1.w_hh", "decoder"]
    assert facts.tile_sparse == names and facts.sparse_formats == dict.fromkeys(names, "panels")
    manifest = ExportManifest.model_validate(json.loads((d / "model.json").read_text()))
    assert manifest.sparse_formats == facts.sparse_formats


def test_auto_export_picks_panels_for_nm(tmp_path):
    q = nm_model("gru", 1, 4, hidden=(128, 64))
    facts = export_c(q, tmp_path / "c", name="tiny", fold_embedding=False)
    assert facts.sparse_formats.get("rnn.layers.0.w_hh") == "panels"


@needs_cc
@pytest.mark.parametrize("flags", list(HOST_FLAGS))
def test_export_equals_runner_on_the_host(export, flags):
    check_host(export[0], export[1], flags)


@pytest.mark.parametrize("target", list(TARGET_CHECKS))
def test_export_equals_runner_on_the_targets(export, target):
    check_target(export[0], export[1], target)


@pytest.mark.slow
def test_export_builds_with_werror_everywhere(export):
    check_werror(export[1])
