"""Exported C of a strips model (export_c(sparse="strips") and "auto"): carries the strips format
(flash counts the index; the manifest names every sparse matrix and its format), equals
IntegerRunner bit for bit on the host (portable, native = AVX512-VBMI + VNNI here, AVX2, and
AVX512-VNNI without VBMI), on the Cortex-M4 and aarch64 under QEMU, and builds with -Werror
-pedantic -Wconversion on every compiler configuration."""

from __future__ import annotations

import json

import pytest
from compilers import needs_cc
from sparse_export_checks import HOST_FLAGS, TARGET_CHECKS, check_host, check_target, check_werror
from strips_models import strips_model

from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime.manifest import ExportManifest


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """one strips LSTM export (hidden 70 and 33: two panels, a partial one, row padding) and its runner"""
    q = strips_model("lstm", hidden=(70, 33), keep=0.3)
    d = tmp_path_factory.mktemp("strips") / "c"
    facts = export_c(q, d, name="tiny", sparse="strips", fold_embedding=False)
    dense = export_c(q, tmp_path_factory.mktemp("dense") / "c", name="tiny", sparse=False, fold_embedding=False)
    return IntegerRunner(q, "portable", fold_embedding=False), d, facts, dense


def test_export_carries_the_format_and_flash_counts_the_index(export):
    _, d, facts, dense = export
    text = (d / "tiny.c").read_text()
    assert text.count("_strip_idx[") == 5 and ".strip_ptr = NULL" not in text  # every matrix is strips
    assert facts.const_bytes < 0.6 * dense.const_bytes
    names = ["rnn.layers.0.w_ih", "rnn.layers.0.w_hh", "rnn.layers.1.w_ih", "rnn.layers.1.w_hh", "decoder"]
    assert facts.tile_sparse == names and facts.sparse_formats == dict.fromkeys(names, "strips")
    assert dense.tile_sparse == [] and dense.sparse_formats == {}
    manifest = ExportManifest.model_validate(json.loads((d / "model.json").read_text()))
    assert manifest.sparse_formats == facts.sparse_formats


def test_auto_export_names_the_formats_it_picked(tmp_path):
    q = strips_model("gru", hidden=(128, 64), keep=0.2, multiple_of_4=True)
    facts = export_c(q, tmp_path / "c", name="tiny", fold_embedding=False)
    assert facts.sparse_formats.get("rnn.layers.0.w_hh") == "strips"
    assert set(facts.sparse_formats.values()) <= {"strips", "tiles"} and set(facts.tile_sparse) == set(facts.sparse_formats)


@needs_cc
@pytest.mark.parametrize("flags", [f if f in ("portable", "native") else pytest.param(f, marks=pytest.mark.slow)
                                   for f in HOST_FLAGS])
def test_export_equals_runner_on_the_host(export, flags):
    check_host(export[0], export[1], flags)


@pytest.mark.parametrize("target", list(TARGET_CHECKS))
def test_export_equals_runner_on_the_targets(export, target):
    check_target(export[0], export[1], target)


@pytest.mark.slow
def test_export_builds_with_werror_everywhere(export):
    check_werror(export[1])
