"""rnnslim.runtime: exported C models from numpy, without torch; verified before loading."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from compilers import needs_cc
from int8_models import integer_model

from rnnslim.export.c_source import export_c
from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.runtime import ExportedModel, ExportError, build_library


def test_importing_the_runtime_does_not_import_torch():
    code = "import sys, rnnslim.runtime; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_exported_model_streams_like_the_kernel(tmp_path, monkeypatch, cell):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    q = integer_model(cell, hidden=(40, 24))
    export_c(q, tmp_path / "c", name="m")
    m = ExportedModel(tmp_path / "c")
    runner = IntegerRunner(q)
    x = torch.randint(0, 30, (120,), generator=torch.Generator().manual_seed(3))
    ref, ref_state = runner.run(x)
    logits, state = m.run(x.numpy())
    assert np.array_equal(logits, ref.numpy()) and np.array_equal(state, ref_state.buf.numpy())
    acc = m.step_int(5, state.copy())  # integer outputs: logits = acc * scale
    assert np.array_equal(acc.astype(np.float32) * _scale(q), m.step(5, state))
    m.reset(state)
    assert not state.any()
    with pytest.raises(IndexError, match="vocabulary"):
        m.step(30, state)
    with pytest.raises(ValueError, match="int16"):
        m.step(1, np.zeros(3, np.int16))


def _scale(q) -> np.ndarray:
    return q.decoder.out_scale.float().numpy()


@needs_cc
def test_a_library_in_the_export_is_never_loaded_and_a_tampered_export_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    q = integer_model("rnn_tanh", hidden=(32,))
    export_c(q, tmp_path / "c", name="m")
    lib = build_library(tmp_path / "c", into_export=True)  # for C programs that link it
    assert lib == tmp_path / "c" / "libm.so" and (tmp_path / "c" / "libm.so.sha256").is_file()
    loaded = ExportedModel(tmp_path / "c").library  # compiled into the private cache instead
    assert loaded.parent == tmp_path / "cache" / "kernels" and loaded.read_bytes() == lib.read_bytes()
    src = tmp_path / "c" / "m.c"
    src.write_text(src.read_text().replace("int m_init(void)", "int m_init(void) /* edited */"))
    with pytest.raises(ExportError, match="m.c does not match"):
        ExportedModel(tmp_path / "c")
    with pytest.raises(ExportError, match="not an rnnslim C export"):
        ExportedModel(tmp_path)


@needs_cc
def test_feature_model_runs_from_numpy(tmp_path, monkeypatch):
    from int8_models import feature_model

    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    q = feature_model("lstm", "linear")
    export_c(q, tmp_path / "c", name="kws")
    m = ExportedModel(tmp_path / "c")
    x = 2 * torch.randn(50, 13)
    logits, state = m.run(x.numpy())
    ref, ref_state = IntegerRunner(q).run_features(x)
    assert np.array_equal(logits, ref.numpy()) and np.array_equal(state, ref_state.buf.numpy())
    with pytest.raises(ValueError, match="13 features"):
        m.step(np.zeros(12, np.float32), m.new_state())


@needs_cc
def test_bidirectional_export_runs_whole_sequences_from_numpy(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    q = integer_model("gru", hidden=(40, 24), bidirectional=True)
    export_c(q, tmp_path / "c", name="bi")
    m = ExportedModel(tmp_path / "c")
    x = torch.randint(0, 30, (60,), generator=torch.Generator().manual_seed(2))
    assert np.array_equal(m.run_sequence(x.numpy()), IntegerRunner(q).run_sequence(x).numpy())
    with pytest.raises(ValueError, match="bidirectional"):
        m.step(1, m.new_state())
    with pytest.raises(IndexError, match="position 2"):
        m.run_sequence(np.array([1, 2, 30]))
    uni = integer_model("lstm", hidden=(24,))
    export_c(uni, tmp_path / "u", name="uni")
    u = ExportedModel(tmp_path / "u")
    assert np.array_equal(u.run_sequence(x.numpy()), u.run(x.numpy())[0])
