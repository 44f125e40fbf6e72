"""Fixed-point building blocks of the integer int8 path (fixedpoint.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from rnnslim.quantize.int8.fixedpoint import (
    GATE_MAX,
    LUT_HALF,
    LUT_SIZE,
    SIG_MIRROR,
    TANH_MIRROR,
    half_table,
    lut,
    quantize_multiplier,
    requant,
    rshr,
    sigmoid_table,
    tanh_table,
)


def test_multiplier_encodes_the_real_value():
    reals = np.array([1e-9, 3.3e-5, 0.0123, 0.5, 0.999999, 1.0, 7.5, 1234.5])
    M, n = quantize_multiplier(reals)
    assert M.dtype == np.int32 and n.dtype == np.int8
    assert np.all((n >= 1) & (n <= 62))
    approx = M.astype(np.float64) * 2.0 ** (-n.astype(np.float64))
    assert np.all(np.abs(approx / reals - 1) < 2**-29)
    assert np.all(M[reals > 2**-31] >= 2**30)  # full 31-bit precision where n allows it


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 2.0**31])
def test_multiplier_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        quantize_multiplier(np.array([bad]))


def test_requant_is_round_half_up_of_the_exact_product():
    g = torch.Generator().manual_seed(0)
    acc = torch.randint(-(2**31) + 1, 2**31 - 1, (2000,), generator=g, dtype=torch.int64)
    M, n = quantize_multiplier(np.exp(np.random.default_rng(0).uniform(-30, 3, 2000)))
    got = requant(acc, torch.from_numpy(M), torch.from_numpy(n))
    for a, m, s, r in zip(acc.tolist()[:300], M.tolist()[:300], n.tolist()[:300], got.tolist()[:300]):
        exact = Fraction(a * m, 2**s)
        assert r == math.floor(exact + Fraction(1, 2))


def test_rounding_shift_rounds_half_up():
    v = torch.arange(-40, 41, dtype=torch.int64)
    assert torch.equal(rshr(v, 0), v)
    expect = torch.tensor([math.floor(x / 8 + 0.5) for x in v.tolist()])
    assert torch.equal(rshr(v, 3), expect)
    with pytest.raises(ValueError):
        rshr(v, -1)


@pytest.mark.parametrize("name, fn, table, tol", [("sigmoid", torch.sigmoid, sigmoid_table, 4e-5),
                                                  ("tanh", torch.tanh, tanh_table, 1.5e-4)])
def test_lookup_tables_approximate_the_functions(name, fn, table, tol):
    t = table()
    assert t.dtype == torch.int16 and t.numel() == LUT_SIZE
    assert torch.all(t[1:] >= t[:-1]), f"{name} table must be monotone"
    pre = torch.arange(-(2**16), 2**16, 7, dtype=torch.int64)  # Q.12 over the table domain
    got = lut(t, pre).double() / 32768
    ref = fn(pre.double() / 4096)
    assert (got - ref).abs().max().item() < tol
    # outside [-16, 16) the table saturates at its end values
    far = torch.tensor([-(2**24), 2**24], dtype=torch.int64)
    assert lut(t, far).tolist() == [int(t[0]), int(t[-1])]
    assert int(t.abs().max()) <= GATE_MAX


@pytest.mark.parametrize("table, mirror", [(sigmoid_table, SIG_MIRROR), (tanh_table, TANH_MIRROR)])
def test_the_kernel_keeps_half_of_each_table_and_mirrors_the_rest_exactly(table, mirror):
    t = table()
    half = half_table(t, mirror)
    assert half.numel() == LUT_HALF == 513 and torch.equal(half, t[:LUT_HALF])
    # rnnslim_core.h's lut(): for k > 512, T[k] = min(32767, mirror - half[1024 - k])
    rebuilt = [int(half[k]) if k < LUT_HALF else min(GATE_MAX, mirror - int(half[1024 - k])) for k in range(LUT_SIZE)]
    assert rebuilt == t.tolist()
    bent = t.clone()
    bent[900] += 1  # a table that is not symmetric cannot be halved
    with pytest.raises(ValueError, match="mirror-symmetric"):
        half_table(bent, mirror)
    with pytest.raises(ValueError, match="mirror-symmetric"):
        half_table(t, TANH_MIRROR if mirror == SIG_MIRROR else SIG_MIRROR)
