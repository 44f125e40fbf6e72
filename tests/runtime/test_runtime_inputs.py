"""Tokens and features are checked before they reach C (issue 19, section 4): ctypes would
turn 2**32 + 5 into token 5, 5.9 / "5" / True into tokens, without a word."""

from __future__ import annotations

import numpy as np
import pytest
from compilers import needs_cc
from int8_models import feature_model, integer_model

from rnnslim.export.c_source import export_c
from rnnslim.runtime import ExportedModel
from rnnslim.runtime.inputs import feature_rows, features_vector, token_id, token_ids


@pytest.mark.parametrize("bad, error", [(2**32 + 5, IndexError), (-1, IndexError), (30, IndexError),
                                        (np.uint64(2**63), IndexError), (5.9, TypeError), (5.0, TypeError),
                                        ("5", TypeError), (True, TypeError), (np.bool_(True), TypeError),
                                        (None, TypeError), (np.array(5), TypeError)])
def test_a_token_must_be_an_integer_in_the_vocabulary(bad, error):
    with pytest.raises(error, match="vocabulary|integer"):
        token_id(bad, 30)


def test_good_tokens_pass_unchanged():
    assert token_id(29, 30) == 29 and token_id(np.int64(3), 30) == 3 and token_id(np.uint8(0), 30) == 0
    assert token_ids([1, 2, 29], 30).tolist() == [1, 2, 29] and token_ids([], 30).shape == (0,)


@pytest.mark.parametrize("bad, error", [([1.5, 2.5], TypeError), ([1, 2**32 + 5], IndexError), ([True, False], TypeError),
                                        (["1"], TypeError), ([1, 2**70], TypeError), ([[1, 2]], ValueError),
                                        (np.array([1.0, 2.0]), TypeError)])
def test_a_token_sequence_must_be_integers_in_the_vocabulary(bad, error):
    with pytest.raises(error):
        token_ids(bad, 30)


def test_features_must_be_finite_and_of_the_compiled_shape():
    ok = np.zeros(13, np.float32)
    assert features_vector(ok, 13) is ok and feature_rows(np.zeros((4, 13)), 13).dtype == np.float32
    for bad in (np.full(13, np.nan, np.float32), np.zeros(12, np.float32), np.zeros(13)):
        with pytest.raises(ValueError):
            features_vector(bad, 13)
    for bad in (np.zeros(26), np.zeros((2, 12)), [[np.inf] * 13], [[1e39] * 13]):
        with pytest.raises(ValueError):
            feature_rows(bad, 13)
    with pytest.raises(TypeError):
        feature_rows([["a"] * 13], 13)


@needs_cc
def test_the_exported_model_refuses_bad_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    export_c(integer_model("gru", hidden=(16,)), tmp_path / "c", name="m")
    m = ExportedModel(tmp_path / "c")
    state = m.new_state()
    for bad, error in ((2**32 + 5, IndexError), (5.9, TypeError), ("5", TypeError), (True, TypeError)):
        with pytest.raises(error):
            m.step(bad, state)
        with pytest.raises(error):
            m.step_int(bad, state)
    assert not state.any()  # nothing ran
    with pytest.raises(TypeError):
        m.run_sequence([1.5, 2.5])
    with pytest.raises(TypeError):
        m.run([1.5, 2.5])
    assert np.array_equal(m.run_sequence([5, 6]), m.run(np.array([5, 6]))[0])


@needs_cc
def test_the_exported_feature_model_refuses_non_finite_and_misshaped_features(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    export_c(feature_model("lstm", "linear"), tmp_path / "c", name="kws")
    m = ExportedModel(tmp_path / "c")
    with pytest.raises(ValueError, match="finite"):
        m.step(np.full(13, np.nan, np.float32), m.new_state())
    with pytest.raises(ValueError, match="shape"):
        m.run_sequence(np.zeros(26, np.float32))  # two rows once, silently reshaped
    with pytest.raises(ValueError, match="finite"):
        m.run_sequence(np.full((3, 13), np.inf, np.float32))
