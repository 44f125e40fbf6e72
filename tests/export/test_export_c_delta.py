"""Exported C of a delta model (quantize/int8/delta.py): NAME_step is the delta step, bit-equal
to IntegerRunner on 40 streams, portable and native builds; the manifest names the thresholds."""

from __future__ import annotations

import copy

import pytest
from compilers import needs_cc
from int8_models import delta_model as _model

from rnnslim.export.c_check import check_on_host, random_streams
from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.delta import set_delta_threshold_
from rnnslim.runtime import read_manifest

FLAGS = {"portable": ("-O2", "-DRS_PORTABLE"), "native": ("-O3", "-march=native")}


@needs_cc
@pytest.mark.parametrize("cell, kind, flags", [("lstm", "embedding", "portable"), ("gru", "linear", "native")])
def test_delta_export_equals_runner(tmp_path, cell, kind, flags):
    q = set_delta_threshold_(copy.deepcopy(_model(cell, kind, hidden=(40, 24))), {0: 3, 1: 6})
    facts = export_c(q, tmp_path / "c", name="tiny")
    runner = IntegerRunner(q, "portable")
    assert facts.delta_thresholds == [3, 6] and read_manifest(tmp_path / "c")["delta_thresholds"] == [3, 6]
    assert facts.state_bytes == -(-2 * runner.state_len // 8) * 8 + runner.delta_bytes
    text = (tmp_path / "c" / "tiny.c").read_text()  # delta matrices: the column-blocked copy only
    assert "l0_wh_cols[" in text and "l0_wh_w[" not in text and "l1_wx_cols[" in text and "l1_wx_w[" not in text
    streams = random_streams(30, 40, 30, features=0 if kind == "embedding" else 13)
    res = check_on_host(runner, tmp_path / "c", streams, flags=FLAGS[flags])
    assert res.ok, res.mismatches
    res = check_on_host(runner, tmp_path / "c", streams[:10], flags=FLAGS[flags], mode="sequence")
    assert res.ok, res.mismatches  # NAME_run: the delta step too, from the zero state
