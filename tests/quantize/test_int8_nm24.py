"""The 2:4 matrix format (nm24.py, rnnslim_core.h matvec_nm24): packing round-trips, the cost rule
picks it only when the pattern holds and it reads fewer bytes, and the kernel's step equals the
dense kernel bit for bit on 2:4 models (portable and native builds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compilers import needs_cc
from nm24_models import nm24_model

from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.nm24 import holds_nm24, nm24_nbytes, pack_nm24, unpack_nm24
from rnnslim.quantize.int8.packed import IntegerProgram, pack_matrix


def random_nm24(rows: int, cols: int, seed: int, keep: int = 2) -> np.ndarray:
    """int8 (rows, cols) with at most `keep` non-zeros (values in [-127, 127], never 0) per row and group of 4"""
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 128, size=(rows, cols)) * rng.choice([-1, 1], size=(rows, cols))
    cp = -(-cols // 4) * 4
    score = rng.random((rows, cp)).reshape(rows, cp // 4, 4)
    mask = (score.argsort(axis=2).argsort(axis=2) < keep).reshape(rows, cp)[:, :cols]
    mask &= rng.random((rows, cols)) < 0.9  # some groups keep fewer
    return (w * mask).astype(np.int8)


@pytest.mark.parametrize("shape", [(1, 1), (16, 4), (17, 5), (48, 12), (33, 70), (5, 8), (3, 9)])
def test_pack_unpack_round_trips(shape):
    rows, cols = shape
    w = random_nm24(rows, cols, seed=rows * 100 + cols)
    p = pack_matrix(w, sparse="nm24")
    padded = np.zeros((p.rows_p, p.cols_p), np.int8)
    padded[:rows, :cols] = w
    if p.nm24:
        assert np.array_equal(unpack_nm24(p.w, p.nm_idx, p.rows_p, p.cols_p), padded)
        assert p.w.size + p.nm_idx.size == nm24_nbytes(p.rows_p, p.cols_p)
    values, index = pack_nm24(padded)
    assert np.array_equal(unpack_nm24(values, index, p.rows_p, p.cols_p), padded)
    # each group's two offsets differ (a slot never repeats a column)
    kg = p.cols_p // 4
    nib = np.stack([index.reshape(p.rows_p, -1) & 15, index.reshape(p.rows_p, -1) >> 4], 2).reshape(p.rows_p, -1)[:, :kg]
    assert ((nib & 3) != (nib >> 2)).all()


def test_cost_rule_and_pattern_check():
    w = random_nm24(64, 64, seed=1)
    assert pack_matrix(w, sparse="nm24").nm24
    assert not pack_matrix(w).nm24 and not pack_matrix(w, sparse=True).nm24  # only asked for
    three = w.copy()
    three[5, 0:3] = 7  # 3 non-zeros in one group: the pattern does not hold exactly
    assert not holds_nm24(three) and not pack_matrix(three, sparse="nm24").nm24
    with pytest.raises(ValueError, match="2:4"):
        pack_nm24(three)
    emptied = w.copy()
    emptied[16:] = 0  # 3/4 of the tiles empty: tile-sparse reads fewer bytes than 2:4
    p = pack_matrix(emptied, sparse="nm24")
    assert p.sparse and not p.nm24
    p = pack_matrix(w, sparse="nm24")
    assert p.nbytes == nm24_nbytes(64, 64) + 4 * 64  # values + index + corr: flash counts the index
    assert p.nbytes < pack_matrix(w, sparse=False).nbytes


@needs_cc
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("variant", ["portable", "native"])
def test_kernel_step_equals_dense_bit_for_bit(cell, variant):
    q = nm24_model(cell)
    program = IntegerProgram.from_model(q, fold_embedding=False, sparse="nm24")
    assert all(m.nm24 for ly in program.layers for m in (ly.wx, ly.wh)) and program.dec.nm24
    sparse = IntegerRunner(q, variant, fold_embedding=False, sparse="nm24")
    dense = IntegerRunner(q, variant, fold_embedding=False, sparse=False)
    tokens = torch.randint(0, 30, (40,), generator=torch.Generator().manual_seed(3))
    a, a_state = sparse.run(tokens)
    b, b_state = dense.run(tokens)
    assert torch.equal(a, b) and torch.equal(a_state.buf, b_state.buf)
    assert a.abs().sum() > 0
