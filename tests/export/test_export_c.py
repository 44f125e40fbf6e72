"""Exported C (rnnslim export --format c) equals IntegerRunner bit for bit on the host."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from compilers import needs_cc
from int8_models import integer_model, zero_tiles

from rnnslim.export.c_check import check_on_host, fnv1a64, random_streams
from rnnslim.export.c_names import c_identifier
from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime import read_manifest

FLAGS = {"portable": ("-O2", "-DRS_PORTABLE"), "native": ("-O3", "-march=native")}


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("tiles", ["dense", "tile-sparse"])
@pytest.mark.parametrize("flags", list(FLAGS))
def test_export_equals_runner_on_100_streams(tmp_path, cell, tiles, flags):
    q = integer_model(cell, hidden=(70, 33))
    if tiles == "tile-sparse":
        q = zero_tiles(q)
    facts = export_c(q, tmp_path / "c", name="tiny")
    assert bool(facts.tile_sparse) == (tiles == "tile-sparse")
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "c", random_streams(30, 100, 24), flags=FLAGS[flags])
    assert res.ok, res.mismatches
    assert res.streams == 100 and (res.simd == 0) == (flags == "portable")


@needs_cc
def test_check_detects_a_changed_weight(tmp_path):
    q = integer_model("gru", hidden=(32,))
    export_c(q, tmp_path / "c", name="tiny")
    with torch.no_grad():  # the model moves on, the exported C does not
        w = q.rnn.layers[0].w_hh
        w[5, 3] = 0 if w[5, 3] != 0 else 1
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "c", random_streams(30, 20, 12), flags=FLAGS["portable"])
    assert not res.ok and res.mismatches


def test_manifest_sizes_and_atomic_overwrite(tmp_path):
    q = integer_model("lstm", hidden=(48, 32), vocab=30, embed=45, out=29)
    out = tmp_path / "c"
    facts = export_c(q, out, name="My Model-1")
    m = read_manifest(out)
    assert m["name"] == "my_model_1" and sorted(p.name for p in out.iterdir()) == sorted(
        ["my_model_1.c", "my_model_1.h", "rnnslim_core.h", "model.json", "rnnslim-export.json"])
    assert m["state_len"] == 2 * (48 + 32) and m["state_bytes"] == 4 * (48 + 32)
    # flash: int8 matrices padded to 16 x 4 tiles + per-row constants + one shared pair of tables
    assert m["const_bytes"] == facts.const_bytes > 30 * 45 + 192 * 48 + 192 * 48 + 128 * 32 + 32 * 32
    assert m["ram_bytes"] == m["scratch_bytes"] + m["state_bytes"]
    text = (out / "my_model_1.c").read_text()
    assert text.count("l0_sig[") == 1 and "l1_sig[" not in text  # identical tables emitted once
    assert "l0_sig[513]" in text and "l0_tanh[513]" in text  # their lower halves (the kernel mirrors the rest)
    # the VNNI row corrections exist on AVX-512 builds only: each defined under the guard, counted apart
    corr = re.findall(r"(#if RS_SIMD == 3\n)?static const int32_t (\w+_corr)\[(\d+)\]", text)
    assert corr and all(guard for guard, _, _ in corr)
    assert m["vnni_bytes"] == facts.vnni_bytes == 4 * sum(int(n) for _, _, n in corr)
    assert "malloc" not in text and "math.h" not in text
    # a folder that is not an export is never overwritten
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="refusing"):
        export_c(q, other)
    assert (other / "notes.txt").read_text() == "keep"
    export_c(q, out, name="again")  # an earlier export is replaced whole
    assert json.loads((out / "model.json").read_text())["name"] == "again" and not (out / "my_model_1.c").exists()


def test_float_model_is_refused_with_a_clear_error(tmp_path):
    from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel

    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=10, embed_size=8,
                     layers=[LayerShape(hidden_size=16)], output_size=10)
    with pytest.raises(ValueError, match="integer int8"):
        export_c(SequenceModel(spec), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_identifiers_and_hash():
    assert c_identifier("charlstm-512x2") == "charlstm_512x2" and c_identifier("2net") == "m_2net"
    assert c_identifier("") == "model"
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C  # the published FNV-1a 64 test vector
    assert np.array_equal(random_streams(7, 3, 5), random_streams(7, 3, 5))


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_folded_export_drops_embedding_and_input_matrix(tmp_path, cell):
    # 4 V < E: the folded table takes less flash than embedding + W_ih, so "auto" folds
    q = integer_model(cell, hidden=(48, 32), vocab=8, embed=64, out=8)
    folded = export_c(q, tmp_path / "f", name="tiny")
    plain = export_c(q, tmp_path / "p", name="tiny", fold_embedding=False)
    assert folded.folded_embedding and not plain.folded_embedding
    text = (tmp_path / "f" / "tiny.c").read_text()
    assert "l0_wx_w[" not in text and "emb[" not in text and "l0_tx_table[" in text
    G = 4 if cell == "lstm" else 3
    # per W_ih row: 64 codes, a 4-byte multiplier and a shift (+ its 4-byte VNNI correction on AVX-512 builds)
    assert plain.const_bytes - folded.const_bytes == 8 * 64 + G * 48 * (64 + 4 + 1) - 8 * G * 48 * 4
    assert plain.vnni_bytes - folded.vnni_bytes == G * 48 * 4
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "f", random_streams(8, 100, 16), flags=FLAGS["portable"])
    assert res.ok, res.mismatches


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("kind", ["identity", "linear"])
def test_feature_model_export_equals_runner(tmp_path, cell, kind):
    from int8_models import feature_model

    q = feature_model(cell, kind, readout="last")
    facts = export_c(q, tmp_path / "c", name="sensor")
    assert facts.input_kind == kind and facts.features == 13 and facts.vocab == 0
    header = (tmp_path / "c" / "sensor.h").read_text()
    assert "#define SENSOR_FEATURES 13" in header and "const float *x" in header
    streams = random_streams(0, 100, 12, features=13)
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "c", streams, flags=FLAGS["native"])
    assert res.ok, res.mismatches


# --- whole sequence: NAME_run (the only entry point of a bidirectional model) ----------------------------------

@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("flags", list(FLAGS))
def test_bidirectional_export_runs_whole_sequences_on_100_streams(tmp_path, cell, flags):
    q = integer_model(cell, hidden=(40, 24), bidirectional=True)
    facts = export_c(q, tmp_path / "c", name="bi")
    assert facts.bidirectional and facts.readout == "all" and facts.state_len == 0 and facts.state_bytes == 0
    assert read_manifest(tmp_path / "c")["bidirectional"] is True
    header, source = (tmp_path / "c" / "bi.h").read_text(), (tmp_path / "c" / "bi.c").read_text()
    assert "int bi_step" not in header and "bi_state" not in header and "not generated" in header
    assert "int bi_run(const int32_t *tokens, int32_t T, void *workspace, float *logits);" in header
    assert "l0_rev = {" in source and "l1_rev = {" in source and "malloc" not in source
    runner = IntegerRunner(q, "portable")
    assert facts.workspace_fixed_bytes + 24 * facts.workspace_bytes_per_step == runner.workspace_bytes(24)
    res = check_on_host(runner, tmp_path / "c", random_streams(30, 100, 24), flags=FLAGS[flags])  # mode: automatic
    assert res.ok, res.mismatches
    assert res.streams == 100 and (res.simd == 0) == (flags == "portable")
    with pytest.raises(ValueError, match="no NAME_step"):
        check_on_host(runner, tmp_path / "c", random_streams(30, 2, 4), mode="step")


@needs_cc
@pytest.mark.parametrize("kind", ["identity", "linear"])
def test_bidirectional_feature_export_readout_last(tmp_path, kind):
    from int8_models import feature_model

    q = feature_model("gru", kind, readout="last", bidirectional=True)
    facts = export_c(q, tmp_path / "c", name="sensor")
    assert facts.bidirectional and facts.readout == "last"
    assert "#define SENSOR_READOUT_LAST 1" in (tmp_path / "c" / "sensor.h").read_text()
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "c", random_streams(0, 100, 12, features=13),
                        flags=FLAGS["native"])
    assert res.ok, res.mismatches


@needs_cc
def test_unidirectional_export_run_and_folded_bidirectional_export(tmp_path):
    q = integer_model("lstm", hidden=(40, 24))  # NAME_run exists beside NAME_step for every model
    facts = export_c(q, tmp_path / "u", name="tiny")
    assert not facts.bidirectional and "tiny_step(" in (tmp_path / "u" / "tiny.h").read_text()
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "u", random_streams(30, 100, 16),
                        flags=FLAGS["portable"], mode="sequence")
    assert res.ok, res.mismatches
    # 4 V < E: both directions of layer 0 read folded tables
    q = integer_model("gru", hidden=(48, 32), vocab=8, embed=64, out=8, bidirectional=True)
    facts = export_c(q, tmp_path / "f", name="tiny")
    text = (tmp_path / "f" / "tiny.c").read_text()
    assert facts.folded_embedding and "l0_tx_table[" in text and "l0r_tx_table[" in text and "emb[" not in text
    res = check_on_host(IntegerRunner(q, "portable"), tmp_path / "f", random_streams(8, 100, 16), flags=FLAGS["native"])
    assert res.ok, res.mismatches
