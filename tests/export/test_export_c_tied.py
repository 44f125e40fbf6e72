"""C export of a tied model (packed.py tied_embedding, rnnslim_core.h rs_token_codes): the int8
table is one const array (the decoder's tiles), flash counts it once, and the C library equals
IntegerRunner bit for bit, with and without a folded layer-0 table."""

from __future__ import annotations

import re

import pytest
import torch

from rnnslim.export.c_check import check_on_host, random_streams
from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime import read_manifest

from compilers import needs_cc
from tied_int8_models import E, V, tied_model

FLAGS = {"portable": ("-O2", "-DRS_PORTABLE"), "native": ("-O3", "-march=native")}


def _int8_arrays(source: str) -> dict[str, int]:
    """{name: length} of the const int8 arrays of NAME.c."""
    return {m[1]: int(m[2]) for m in re.finditer(r"static const int8_t (\w+)\[(\d+)\]", source)}


def test_tied_export_holds_the_table_once(tmp_path):
    _, tied = tied_model("lstm")
    _, untied = tied_model("lstm", tie=False)
    t = export_c(tied, tmp_path / "t", name="lm")
    u = export_c(untied, tmp_path / "u", name="lm")
    assert not t.folded_embedding and not u.folded_embedding
    arrays = _int8_arrays((tmp_path / "t" / "lm.c").read_text())
    assert "emb" not in arrays and arrays["dec_w"] == 32 * 8  # V = 20 rows padded to 32, E = 6 columns to 8
    assert "emb" in _int8_arrays((tmp_path / "u" / "lm.c").read_text())
    assert u.const_bytes - t.const_bytes == V * E  # the untied model's embedding array, nothing else
    assert read_manifest(tmp_path / "t")["const_bytes"] == t.const_bytes
    header = (tmp_path / "t" / "lm.h").read_text()
    assert f"flash {t.const_bytes:,} bytes" in header and "tied to the decoder" in header
    assert "tied" not in (tmp_path / "u" / "lm.h").read_text()
    assert ".emb_tied" not in (tmp_path / "u" / "lm.c").read_text()  # an untied export is written as before


@needs_cc
@pytest.mark.parametrize("cell, flags, mode", [("lstm", "portable", "step"), ("gru", "portable", "sequence"),
                                              ("rnn_tanh", "portable", "step"), ("lstm", "native", "sequence"),
                                              ("gru", "native", "step")])
def test_tied_export_equals_runner(tmp_path, cell, flags, mode):
    _, q = tied_model(cell)
    export_c(q, tmp_path / "c", name="lm")
    runner = IntegerRunner(q, "portable", fold_embedding=False)
    res = check_on_host(runner, tmp_path / "c", random_streams(V, 60, 16), flags=FLAGS[flags], mode=mode)
    assert res.ok and res.streams == 60, res.mismatches


@needs_cc
def test_tied_export_with_a_folded_table_equals_runner(tmp_path):
    _, q = tied_model("gru", hidden=16)
    facts = export_c(q, tmp_path / "c", name="lm", fold_embedding=True)
    assert facts.folded_embedding
    arrays = _int8_arrays((tmp_path / "c" / "lm.c").read_text())
    assert "emb" not in arrays and "dec_w" in arrays and "l0_wx_w" not in arrays
    runner = IntegerRunner(q, "portable")
    res = check_on_host(runner, tmp_path / "c", random_streams(V, 40, 12), flags=FLAGS["portable"])
    assert res.ok, res.mismatches


def test_changing_the_table_changes_both_uses():
    _, q = tied_model("lstm")
    x = torch.tensor([[3], [5], [3]])
    before = q(x)[0]
    with torch.no_grad():
        q.embedding.weight[3].neg_()  # one tensor: the lookup of token 3 and logit 3 both move
    after = q(x)[0]
    assert not torch.equal(after[0], before[0]) and not torch.equal(after[1, 0, 3], before[1, 0, 3])
