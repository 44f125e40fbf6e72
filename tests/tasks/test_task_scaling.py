"""Standardizer: train-split statistics, missing values, constant features, meta round trip."""

from __future__ import annotations

import numpy as np
import pytest

from rnnslim.tasks.scaling import Standardizer


def test_fit_ignores_nan_and_keeps_constant_features_finite():
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [np.nan, 5.0, 4.0]])
    s = Standardizer.fit(x)
    assert np.allclose(s.mean, [2.0, 5.0, 3.0]) and np.allclose(s.std, [1.0, 1.0, 1.0])
    z = s.apply(x)
    assert z.dtype == np.float32 and z[1, 1] == 0.0 and np.isnan(z[0, 2])
    assert np.allclose(s.invert(z[1]), x[1])


def test_meta_round_trip_and_feature_count_check():
    s = Standardizer.fit(np.random.default_rng(0).normal(3, 2, size=(50, 4)))
    back = Standardizer.from_meta(s.to_meta(), 4)
    assert np.array_equal(back.mean, s.mean) and np.array_equal(back.std, s.std)
    with pytest.raises(ValueError, match="trained on 4 channels but the data has 3"):
        Standardizer.from_meta(s.to_meta(), 3, "channels")
    with pytest.raises(ValueError, match="no usable normalisation"):
        Standardizer.from_meta({}, 4)
    with pytest.raises(ValueError, match="non-positive"):
        Standardizer.from_meta({"mean": [0.0], "std": [0.0]}, 1)
    with pytest.raises(ValueError, match="non-empty"):
        Standardizer.fit(np.zeros((0, 2)))
