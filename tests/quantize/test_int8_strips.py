"""The strips matrix format (strips.py, rnnslim_core.h matvec_strips): packing round-trips on odd
sizes and any sparsity, padding to multiples of 4 per (row block, panel), the "auto" cost rule, the
MAC / byte counts, and the kernel's step equal to the dense kernel bit for bit (portable, avx2 and
native builds; the native one is AVX512-VBMI + VNNI on a CPU that has it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from int8_models import VARIANTS, feature_model, integer_model, zero_tiles
from strips_models import strip_mask, strips_model

from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.packed import IntegerProgram, pack_matrix, strips_cost
from rnnslim.quantize.int8.strips import pack_strips, strip_tile_count, strips_nbytes, unpack_strips


def random_strips(rows: int, cols: int, keep: float, seed: int, multiple_of_4: bool = False) -> np.ndarray:
    """int8 (rows, cols), non-zero values only on random 16 x 1 strips (strips_models.strip_mask)"""
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 128, size=(rows, cols)) * rng.choice([-1, 1], size=(rows, cols))
    return (w * strip_mask(rows, cols, keep, multiple_of_4, seed).numpy()).astype(np.int8)


def padded(w: np.ndarray, rows_p: int, cols_p: int) -> np.ndarray:
    out = np.zeros((rows_p, cols_p), np.int8)
    out[: w.shape[0], : w.shape[1]] = w
    return out


@pytest.mark.parametrize("shape", [(1, 1), (16, 4), (17, 5), (48, 64), (50, 133), (33, 70), (64, 260)])
@pytest.mark.parametrize("pattern", ["strips", "strips4", "unstructured"])
def test_pack_unpack_round_trips_on_any_matrix(shape, pattern):
    rows, cols = shape
    rng = np.random.default_rng(rows * 1000 + cols)
    if pattern == "unstructured":
        w = (rng.integers(-127, 128, shape) * (rng.random(shape) < 0.2)).astype(np.int8)
    else:
        w = random_strips(rows, cols, 0.3, seed=rows + cols, multiple_of_4=pattern == "strips4")
    p = pack_matrix(w, sparse="strips")
    assert p.strips and p.format == "strips"
    full = padded(w, p.rows_p, p.cols_p)
    assert np.array_equal(unpack_strips(p.w, p.strip_ptr, p.strip_idx, p.rows_p, p.cols_p), full)
    assert p.n_tiles == strip_tile_count(full) and p.macs == 64 * p.n_tiles
    assert p.nbytes == strips_nbytes(p.rows_p, p.cols_p, p.n_tiles) + 4 * p.rows_p  # flash counts the index
    # inside a (block, panel): distinct stored columns, ascending, inside the matrix
    n_panels = -(-p.cols_p // 64)
    for bp in range(len(p.strip_ptr) - 1):
        cols_bp = 64 * (bp % n_panels) + p.strip_idx[4 * p.strip_ptr[bp]: 4 * p.strip_ptr[bp + 1]].astype(int)
        assert (np.diff(cols_bp) > 0).all() and (cols_bp < p.cols_p).all()


def test_padding_only_where_a_panel_count_is_not_a_multiple_of_4():
    w = np.zeros((32, 130), np.int8)
    w[:16, [0, 5, 9, 63, 64, 70, 71]] = 3  # block 0: 4 strips in panel 0, 3 in panel 1 (padded to 4)
    w[16:, 128] = -2  # block 1: 1 strip in the last, 4-column panel (padded to 4)
    w[3, 129] = 1  # block 0: a non-zero in one row keeps the whole strip of that column
    p = pack_matrix(w, sparse="strips")
    assert p.strip_ptr.tolist() == [0, 1, 2, 3, 3, 3, 4]  # (block, panel) tile counts 1 1 1 | 0 0 1
    assert p.strip_idx[:8].tolist() == [0, 5, 9, 63, 0, 1, 6, 7]  # panel 1: 64, 70, 71 + the smallest free, 65
    assert p.strip_idx[8:12].tolist() == [0, 1, 2, 3] and p.strip_idx[12:].tolist() == [0, 1, 2, 3]
    assert np.array_equal(unpack_strips(p.w, p.strip_ptr, p.strip_idx, 32, 132), padded(w, 32, 132))


def test_auto_cost_rule():
    w = random_strips(256, 256, 0.2, seed=1, multiple_of_4=True)  # ~80 % sparse in 16 x 1 strips
    p = pack_matrix(w)
    assert p.strips and strips_cost(padded(w, 256, 256)) < (256 // 16) * (256 // 4)
    assert pack_matrix(w, sparse=False).format == "dense" and pack_matrix(w, sparse=True).format == "tiles"
    dense = np.random.default_rng(2).integers(-127, 128, (64, 64)).astype(np.int8)
    assert pack_matrix(dense).format == "dense"  # every strip kept: strips would cost more
    unstructured = (dense * (np.random.default_rng(3).random((64, 64)) < 0.5)).astype(np.int8)
    assert pack_matrix(unstructured).format == "dense"  # 50 % unstructured keeps every 16 x 1 strip
    tiles = w.copy()
    tiles[:, 128:] = 0
    tiles[:, :128] = 5
    tiles[:16] = 0  # whole tiles empty: the tile-sparse format reads the same tiles with less index
    assert pack_matrix(tiles).format == "tiles"
    with pytest.raises(ValueError, match="strips"):
        pack_matrix(w, sparse="strip")
    with pytest.raises(ValueError, match="multiples"):
        pack_strips(np.zeros((17, 4), np.int8))


def test_program_counts_macs_and_bytes_of_the_formats():
    q = strips_model("lstm", keep=0.25, multiple_of_4=True)
    sparse = IntegerProgram.from_model(q, fold_embedding=False, sparse="strips")
    dense = IntegerProgram.from_model(q, fold_embedding=False, sparse=False)
    mats = sparse.step_matrices()
    assert len(mats) == 5 and all(m.strips for m in mats)
    assert sparse.macs_per_step() == sum(64 * m.n_tiles for m in mats)
    assert dense.macs_per_step() == dense.dense_macs_per_step() == sparse.dense_macs_per_step()
    assert sparse.macs_per_step() < 0.5 * dense.macs_per_step()
    assert sparse.bytes_per_step() < 0.6 * dense.bytes_per_step()
    folded = IntegerProgram.from_model(q, fold_embedding=True, sparse="strips")
    assert len(folded.step_matrices()) == 4  # layer 0's W_ih is replaced by the table row


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("multiple_of_4", [False, True])
def test_kernel_step_equals_dense_bit_for_bit(variant, cell, multiple_of_4):
    q = strips_model(cell, multiple_of_4=multiple_of_4)
    strips = IntegerRunner(q, variant, fold_embedding=False, sparse="strips")
    assert all(m.strips for m in strips.program.step_matrices())
    dense = IntegerRunner(q, variant, fold_embedding=False, sparse=False)
    tokens = torch.randint(0, 30, (40,), generator=torch.Generator().manual_seed(3))
    a, a_state = strips.run(tokens)
    b, b_state = dense.run(tokens)
    assert torch.equal(a, b) and torch.equal(a_state.buf, b_state.buf)
    assert a.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_kernel_wide_input_and_unstructured_matrices(variant):
    """W_ih with 1100 columns (a dense row block gathers more codes than one batch of the SIMD
    paths: the batch is flushed), and unstructured matrices stored as strips, equal the dense kernel"""
    q = strips_model("gru", hidden=(40,), embed=1100, keep=0.5)
    unstructured = integer_model("lstm", hidden=(70, 33), seed=1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        for layer in unstructured.rnn.layers:
            layer.w_hh.mul_((torch.rand(layer.w_hh.shape, generator=g) < 0.1).to(torch.int8))
    zero_tiles(unstructured, keep=0.5)
    for model in (q, unstructured):
        strips = IntegerRunner(model, variant, fold_embedding=False, sparse="strips")
        dense = IntegerRunner(model, variant, fold_embedding=False, sparse=False)
        tokens = torch.randint(0, 30, (25,), generator=torch.Generator().manual_seed(5))
        a, a_state = strips.run(tokens)
        b, b_state = dense.run(tokens)
        assert torch.equal(a, b) and torch.equal(a_state.buf, b_state.buf)
    assert strips.program.layers[0].wx.strips


@pytest.mark.parametrize("variant", VARIANTS)
def test_whole_sequence_bidirectional_and_input_projection(variant):
    """rs_core_run with strips matrices: a bidirectional token model (both directions' matrices) and a
    feature model whose int8 input projection is strips too, equal to the torch integer reference"""
    bidi = integer_model("gru", hidden=(40, 24), bidirectional=True)
    feats = feature_model("lstm", "linear", hidden=(40, 24))
    for q in (bidi, feats):
        mats = [q.decoder.weight] + [getattr(ly.direction(k), n) for ly in q.rnn.layers
                                     for k in range(2 if ly.bidirectional else 1) for n in ("w_ih", "w_hh")]
        mats += [q.input_proj.weight] if getattr(q, "input_proj", None) is not None else []
        with torch.no_grad():
            for k, w in enumerate(mats):
                w.mul_(strip_mask(*w.shape, 0.3, False, k).to(w.dtype))
        runner = IntegerRunner(q, variant, sparse="strips")
        program = runner.program
        mats = program.step_matrices()
        assert all(m.strips for m in mats) and len(mats) >= 5
        assert all(m.n_tiles < 0.6 * (m.rows_p // 16) * (m.cols_p // 4) for m in mats)  # really pruned
        g = torch.Generator().manual_seed(5)
        x = torch.randint(0, 30, (19,), generator=g) if q is bidi else 3.0 * torch.randn(19, 13, generator=g)
        ref, _ = q(x[:, None])
        assert torch.equal(runner.run_sequence(x), ref[:, 0]) and ref.abs().sum() > 0
    assert program.inputs.proj.strips


@pytest.mark.parametrize("where", ["strip_idx", "strip_ptr"])
def test_kernel_refuses_bad_strip_arrays(monkeypatch, where):
    q = strips_model("lstm")
    program = IntegerProgram.from_model(q, fold_embedding=False, sparse="strips")
    wh = program.layers[0].wh  # 280 x 70: panel 1 holds columns 64 .. 71
    if where == "strip_idx":
        wh.strip_idx[4 * wh.strip_ptr[1]] = 8  # column 72 of panel 1: outside the matrix
    else:
        wh.strip_ptr[1] = wh.strip_ptr[2] + 1  # pointers going backwards
    monkeypatch.setattr(IntegerProgram, "from_model", classmethod(lambda cls, *a, **k: program))
    with pytest.raises(ValueError, match="matrix 1: the kernel rejected it"):
        IntegerRunner(q, "portable", fold_embedding=False, sparse="strips")
