"""The panels matrix format (panels.py, rnnslim_panels.h): packing round-trips on odd sizes, unbalanced
rows and empty panels, the group counts of N:M patterns, the C product equal to the dense int32
product bit for bit on every path (portable C, AVX2 build, AVX-512 without VBMI, native), the "auto"
cost rule, and IntegerRunner with panels matrices equal to the dense kernel bit for bit."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
import torch
from int8_models import VARIANTS, integer_model
from panels_models import nm_model, nm_prune_

from rnnslim.quantize.int8 import IntegerRunner
from rnnslim.quantize.int8.packed import IntegerProgram, pack_matrix, panels_cost
from rnnslim.quantize.int8.panels import pack_panels, panel_counts, panel_group_count, panels_nbytes, unpack_panels
from rnnslim.runtime.build import CompilerUnavailable, compile_shared, cpu_fingerprint

INT8 = Path(__file__).resolve().parents[2] / "src" / "rnnslim" / "quantize" / "int8"
DRIVER = Path(__file__).with_name("panels_driver.c")
FLAGS = {
    "portable": ["-O2", "-DRS_PORTABLE"],
    "avx2": ["-O3", "-mavx2"],
    "avx512-novbmi": ["-O3", "-march=native", "-mno-avx512vbmi"],
    "native": ["-O3", "-march=native"],
}


def build(variant: str) -> ctypes.CDLL:
    needs = {"avx2": " avx2", "avx512-novbmi": " avx512_vnni"}.get(variant)
    if needs and needs not in cpu_fingerprint():
        pytest.skip(f"{variant} needs{needs} on this CPU")
    try:
        path = compile_shared([DRIVER], FLAGS[variant] + [f"-I{INT8}"], f"rnnslim_panels_test_{variant}",
                              depends=[INT8 / "rnnslim_core.h", INT8 / "rnnslim_panels.h"])
    except CompilerUnavailable as e:
        pytest.skip(str(e))
    lib = ctypes.CDLL(str(path))
    lib.rs_panels_matvec.restype = None
    return lib


def padded(w: np.ndarray) -> np.ndarray:
    rows_p, cols_p = -(-w.shape[0] // 16) * 16, -(-w.shape[1] // 4) * 4
    out = np.zeros((rows_p, cols_p), np.int8)
    out[: w.shape[0], : w.shape[1]] = w
    return out


def random_codes(shape, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, shape) * (rng.random(shape) < density)  # the kernel's codes: [-127, 127]
    return w.astype(np.int8)


def nm_codes(rows: int, cols: int, n: int, m: int, seed: int) -> np.ndarray:
    """int8 (rows, cols) keeping n random non-zeros in every group of m columns of each row"""
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((rows, cols // m, m)), axis=2) < n
    w = rng.integers(1, 128, (rows, cols)) * rng.choice([-1, 1], (rows, cols)) * keep.reshape(rows, cols)
    return w.astype(np.int8)


def unbalanced(seed: int = 5) -> np.ndarray:
    """rows of very different counts, an empty panel, a full row, a last panel 4 columns wide"""
    w = random_codes((35, 196), 0.1, seed)
    w[:, 64:128] = 0  # an empty panel for every block
    w[3] = 127  # one full row: its block stores whole panels
    w[20:, :64] = 0
    w[21, 7] = -127
    return w


SHAPES = [((1, 1), 0.9), ((16, 4), 1.0), ((17, 5), 0.5), ((48, 64), 0.25), ((50, 133), 0.1), ((33, 70), 0.0),
          ((64, 260), 0.3)]


@pytest.mark.parametrize("shape, density", SHAPES)
def test_pack_unpack_round_trips(shape, density):
    full = padded(random_codes(shape, density, seed=shape[0] * 7 + shape[1]))
    w, ptr, idx = pack_panels(full)
    assert np.array_equal(unpack_panels(w, ptr, idx, *full.shape), full)
    n_groups = panel_group_count(full)
    assert len(w) == len(idx) == 64 * n_groups and ptr[-1] == n_groups
    # inside a (block, panel): each row's offsets distinct and inside the matrix
    n_panels = -(-full.shape[1] // 64)
    for bp in range(len(ptr) - 1):
        offsets = idx[64 * ptr[bp]: 64 * ptr[bp + 1]].reshape(-1, 16, 4).transpose(1, 0, 2).reshape(16, -1)
        cols = 64 * (bp % n_panels) + offsets.astype(int)
        assert (cols < full.shape[1]).all()
        assert all(len(set(row)) == len(row) for row in cols.tolist())


def test_counts_of_balanced_and_unbalanced_rows():
    w = np.zeros((32, 132), np.int8)
    w[0, [1, 2, 3, 4, 5]] = 1  # block 0, panel 0: 5 in one row -> 8 slots (2 groups) for every row
    w[1, 63] = -1
    w[16:, 64:80] = 2  # block 1, panel 1: 16 per row -> 4 groups
    w[31, 131] = 3  # block 1, the 4-column last panel: 1 -> one group
    assert panel_counts(w).tolist() == [[2, 0, 0], [0, 4, 1]]
    w_, ptr, idx = pack_panels(w)
    assert ptr.tolist() == [0, 2, 2, 2, 2, 6, 7]
    row1 = idx[:128].reshape(2, 16, 4)[:, 1].reshape(-1).tolist()  # row 1's slots: its code, then free columns
    assert row1 == [63, 0, 1, 2, 3, 4, 5, 6]
    assert w_[:128].reshape(2, 16, 4)[:, 1].reshape(-1).tolist() == [-1, 0, 0, 0, 0, 0, 0, 0]
    assert panels_nbytes(32, 132, 7) == 7 * 128 + 4 * 7


@pytest.mark.parametrize("n, m, groups_per_panel", [(1, 4, 4), (2, 8, 4), (16, 64, 4), (6, 64, 2), (1, 16, 1)])
def test_nm_patterns_store_exactly_their_codes(n, m, groups_per_panel):
    w = nm_codes(64, 256, n, m, seed=n + m)
    assert (panel_counts(w) == groups_per_panel).all()  # 64 / m * n kept per row and panel, rounded to 4
    assert panel_group_count(w) * 64 >= (w != 0).sum()


def product(lib, full: np.ndarray, x: np.ndarray) -> np.ndarray:
    w, ptr, idx = pack_panels(full)
    corr = (128 * full.astype(np.int64).sum(axis=1)).astype(np.int32)
    y = np.zeros(full.shape[0], np.int32)
    x = np.ascontiguousarray(x, np.int8)
    w = np.ascontiguousarray(w if len(w) else np.zeros(64, np.int8))
    idx = np.ascontiguousarray(idx if len(idx) else np.zeros(64, np.uint8))
    P = ctypes.c_void_p
    lib.rs_panels_matvec(P(w.ctypes.data), P(idx.ctypes.data), P(ptr.ctypes.data), P(corr.ctypes.data),
                         ctypes.c_int(full.shape[0]), ctypes.c_int(full.shape[1]), P(x.ctypes.data), P(y.ctypes.data))
    return y


@pytest.mark.parametrize("variant", list(FLAGS))
def test_product_is_bit_exact_with_dense(variant):
    lib = build(variant)
    expected = {"portable": 0, "avx2": 2, "avx512-novbmi": 3}.get(variant)
    if expected is not None:
        assert lib.rs_panels_simd_level() == expected  # the path the test means to check
    rng = np.random.default_rng(11)
    cases = [padded(random_codes(s, d, seed=s[0] + s[1])) for s, d in SHAPES]
    cases += [padded(unbalanced()), nm_codes(64, 256, 1, 4, 1), nm_codes(48, 320, 6, 64, 2), nm_codes(32, 512, 16, 64, 3)]
    for full in cases:
        for x in (rng.integers(-127, 128, full.shape[1]), np.full(full.shape[1], -127), np.full(full.shape[1], 127)):
            x = x.astype(np.int8)
            dense = full.astype(np.int64) @ x.astype(np.int64)
            assert np.array_equal(product(lib, full, x), dense), (variant, full.shape)


# ---- the kernel (rnnslim_core.h matvec_panels through IntegerRunner) and the packing rules ----

def test_auto_picks_panels_for_nm_and_dense_for_half_unstructured():
    for n, m in ((1, 4), (16, 64), (1, 8)):
        assert pack_matrix(nm_codes(256, 256, n, m, seed=m)).format == "panels", (n, m)
    dense = np.random.default_rng(2).integers(-127, 128, (64, 64)).astype(np.int8)
    assert pack_matrix(dense).format == "dense"
    half = (dense * (np.random.default_rng(3).random((64, 64)) < 0.5)).astype(np.int8)
    assert pack_matrix(half).format == "dense"
    p = pack_matrix(nm_codes(50, 132, 1, 4, seed=1), sparse="panels")
    assert p.panels and p.macs == 64 * p.n_tiles == 64 * int(p.panel_ptr[-1])
    assert p.nbytes == panels_nbytes(p.rows_p, p.cols_p, p.n_tiles) + 4 * p.rows_p  # flash counts the index
    assert np.array_equal(unpack_panels(p.w, p.panel_ptr, p.panel_idx, p.rows_p, p.cols_p),
                          padded(nm_codes(50, 132, 1, 4, seed=1)))
    assert panels_cost(nm_codes(64, 256, 1, 4, 0)) < (64 // 16) * (256 // 4)


def test_auto_leaves_panels_out_on_a_build_where_they_are_slow():
    nm = nm_codes(256, 256, 1, 4, seed=4)
    assert pack_matrix(nm, panels_fast=False).format == "dense"  # what "auto" picks without panels
    assert pack_matrix(nm, sparse="panels", panels_fast=False).format == "panels"  # forced: any build


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_runner_asks_its_kernel_build_whether_panels_are_fast(variant):
    """auto on an N:M model: panels exactly where the loaded build says they are faster (AVX512-VBMI,
    portable C); an AVX2-only build stores the same matrices dense. Results are the same either way."""
    q = nm_model("lstm", 1, 4)
    runner = IntegerRunner(q, variant, fold_embedding=False)
    fast = bool(runner.lib.rs_panels_fast())
    if variant in ("portable", "avx2"):
        assert fast == (variant == "portable")
    assert {m.format == "panels" for m in runner.program.step_matrices()} == {fast}


def test_program_counts_macs_of_the_panels():
    q = nm_model("lstm", 1, 4)
    sparse = IntegerProgram.from_model(q, fold_embedding=False, sparse="panels")
    dense = IntegerProgram.from_model(q, fold_embedding=False, sparse=False)
    mats = sparse.step_matrices()
    assert len(mats) == 5 and all(m.format == "panels" for m in mats)
    assert sparse.macs_per_step() == sum(64 * m.n_tiles for m in mats) < 0.5 * dense.macs_per_step()
    assert "5 panels" in sparse.work_note()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell, n, m", [("lstm", 1, 4), ("gru", 6, 64), ("rnn_tanh", 3, 8)])
def test_kernel_step_equals_dense_bit_for_bit(variant, cell, n, m):
    q = nm_model(cell, n, m)
    panels = IntegerRunner(q, variant, fold_embedding=False, sparse="panels")
    assert all(mat.panels for mat in panels.program.step_matrices())
    dense = IntegerRunner(q, variant, fold_embedding=False, sparse=False)
    tokens = torch.randint(0, 30, (40,), generator=torch.Generator().manual_seed(3))
    a, a_state = panels.run(tokens)
    b, b_state = dense.run(tokens)
    assert torch.equal(a, b) and torch.equal(a_state.buf, b_state.buf)
    assert a.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_kernel_unstructured_wide_and_bidirectional(variant):
    """unbalanced (unstructured) matrices, a 1100-column W_ih, and rs_core_run over both directions of a
    bidirectional model, all as panels, equal the dense kernel"""
    wide = nm_prune_(integer_model("gru", hidden=(40,), embed=1100), 2, 16)
    unstructured = integer_model("lstm", hidden=(70, 33), seed=1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        for layer in unstructured.rnn.layers:
            layer.w_hh.mul_((torch.rand(layer.w_hh.shape, generator=g) < 0.1).to(torch.int8))
    bidi = nm_prune_(integer_model("gru", hidden=(40, 24), bidirectional=True), 1, 4)
    tokens = torch.randint(0, 30, (25,), generator=torch.Generator().manual_seed(5))
    for model in (wide, unstructured, bidi):
        panels = IntegerRunner(model, variant, fold_embedding=False, sparse="panels")
        dense = IntegerRunner(model, variant, fold_embedding=False, sparse=False)
        assert panels.program.layers[0].wh.panels
        if model is bidi:
            assert torch.equal(panels.run_sequence(tokens), dense.run_sequence(tokens))
            continue
        a, a_state = panels.run(tokens)
        b, b_state = dense.run(tokens)
        assert torch.equal(a, b) and torch.equal(a_state.buf, b_state.buf)
