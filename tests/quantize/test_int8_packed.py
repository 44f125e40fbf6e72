"""pack_matrix / IntegerProgram: the tile layout rnnslim_core.h reads."""

from __future__ import annotations

import numpy as np
import pytest

from rnnslim.quantize.int8.packed import SPARSE_MAX_TILE_DENSITY, pack_matrix


def _unpack_dense(p) -> np.ndarray:
    t = p.w.reshape(p.rows_p // 16, p.cols_p // 4, 16, 4).transpose(0, 2, 1, 3)
    return t.reshape(p.rows_p, p.cols_p)[: p.rows, : p.cols]


def _unpack_sparse(p) -> np.ndarray:
    out = np.zeros((p.rows_p, p.cols_p), np.int8)
    tiles = p.w.reshape(-1, 16, 4)
    for b in range(p.rows_p // 16):
        for t in range(p.tile_ptr[b], p.tile_ptr[b + 1]):
            kg = int(p.tile_col[t])
            out[16 * b: 16 * b + 16, 4 * kg: 4 * kg + 4] = tiles[t]
    return out[: p.rows, : p.cols]


def test_dense_packing_round_trips_with_padding():
    w = np.random.default_rng(0).integers(-127, 128, (37, 10)).astype(np.int8)
    p = pack_matrix(w, sparse=False)
    assert (p.rows_p, p.cols_p) == (48, 12) and not p.sparse
    assert np.array_equal(_unpack_dense(p), w)
    assert np.array_equal(p.corr[:37], 128 * w.astype(np.int32).sum(1)) and not p.corr[37:].any()


def test_sparse_packing_keeps_only_nonzero_tiles():
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (64, 40)).astype(np.int8)
    w[16:32] = 0  # a whole empty row block
    w[:, 8:12] = 0  # one empty column group everywhere
    p = pack_matrix(w, sparse=True)
    assert p.sparse and p.n_tiles == 3 * 9 and p.tile_ptr.tolist() == [0, 9, 9, 18, 27]
    assert 2 not in p.tile_col.tolist()
    assert np.array_equal(_unpack_sparse(p), w)


def test_auto_chooses_by_tile_density_and_bad_input_is_refused():
    w = np.ones((32, 32), np.int8)
    assert not pack_matrix(w).sparse
    w[:, : int(32 * (1 - SPARSE_MAX_TILE_DENSITY)) + 4] = 0
    assert pack_matrix(w).sparse
    with pytest.raises(ValueError, match="int8"):
        pack_matrix(w.astype(np.int16))
    with pytest.raises(ValueError, match="sparse"):
        pack_matrix(w, sparse="yes")


def test_bytes_per_step_counts_what_the_step_reads():
        
    from int8_models import integer_model, zero_tiles

    from rnnslim.quantize.int8.packed import IntegerProgram

    q = integer_model("gru", hidden=(64,), vocab=30, embed=45, out=29)
    dense = IntegerProgram.from_model(q, fold_embedding=False, sparse=False)
    ly = dense.layers[0]
    expect = 45 + (192 * 48 + 192 * 4 + 192 * 5) + (192 * 64 + 192 * 4 + 192 * 5) + 4 * 4 * 64 + 2 * 2 * 1025
    expect += 32 * 64 + 32 * 4 + 29 * 8
    assert dense.bytes_per_step() == expect and ly.wx.nbytes == 192 * 48 + 192 * 4
    folded = IntegerProgram.from_model(q, fold_embedding=True, sparse=False)
    assert folded.bytes_per_step() == expect - 45 - (192 * 48 + 192 * 4 + 192 * 5) + 4 * 192
    sparse = IntegerProgram.from_model(zero_tiles(q, keep=0.25), fold_embedding=False, sparse=True)
    assert sparse.bytes_per_step() < 0.5 * expect


def test_bidirectional_program_packs_both_directions():
        
    from int8_models import integer_model

    from rnnslim.quantize.int8.packed import IntegerProgram

    q = integer_model("gru", hidden=(64,), vocab=30, embed=45, out=29, bidirectional=True)
    p = IntegerProgram.from_model(q, fold_embedding=False, sparse=False)
    ly = p.layers[0]
    assert p.bidirectional and ly.rev is not None and p.state_len == 0 and p.dec.cols == 128
    assert np.array_equal(ly.rev.wh.w, pack_matrix(q.rnn.layers[0].direction(1).w_hh, sparse=False).w)
    direction = (192 * 48 + 192 * 4 + 192 * 5) + (192 * 64 + 192 * 4 + 192 * 5) + 4 * 4 * 64
    assert p.bytes_per_step() == 45 + 2 * direction + 2 * 2 * 1025 + 32 * 128 + 32 * 4 + 29 * 8
    # whole-sequence workspace: one direction's state (64 int16, 64-byte aligned) + one T x 128 code buffer
    assert (p.workspace_fixed_bytes, p.workspace_bytes_per_step) == (63 + 128, 128)
    assert p.workspace_bytes(10) == 63 + 128 + 1280
