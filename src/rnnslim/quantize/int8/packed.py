"""IntegerProgram: every array the C step (rnnslim_core.h) reads, packed, as numpy.

One packing serves both consumers, so the host kernel and an exported C model hold the
same bytes: IntegerRunner copies these arrays into the kernel through ctypes, and
rnnslim.export.c_source writes them out as const C arrays.

A tied model (the integer decoder's weight is the embedding's table) packs that table once,
as the decoder's dense tiles; the embedding lookup gathers a token's row from them
(rnnslim_core.h rs_token_codes), so emb is None and the table is in flash once.

Matrix packing (rnnslim_core.h): a (rows, cols) int8 matrix is zero-padded to (rows_p,
cols_p) = multiples of (16, 4) and cut into tiles of 16 rows x 4 columns, stored
[row block][column group][16][4] so a tile is 64 contiguous bytes. A tile-sparse matrix
keeps only its non-zero tiles with a CSR index (tile_ptr per row block, tile_col per
tile); "auto" stores a matrix tile-sparse when at most SPARSE_MAX_TILE_DENSITY of its
tiles hold a non-zero (block pruning with 16 x 4 blocks empties whole tiles; unstructured
sparsity almost never does). sparse="nm24" also stores a matrix in the 2:4 format (nm24.py:
at most 2 non-zeros per row in each group of 4 columns, as N:M 2:4 pruning leaves them) when
the pattern holds exactly and the cost rule prefers it: it reads fewer bytes than the format
"auto" picks (dense or tile-sparse). Its multiply-adds are half the dense ones but run as
plain C on every build (rnnslim_core.h matvec_nm24), so "auto" does not pick it yet: on a
host the dense SIMD product can be faster; on a microcontroller (portable C) it is the win.

The strips format (strips.py: the non-zero 16 x 1 column strips of each row block, gathered
per 64-column panel into 16 x 4 tiles) packs any matrix; sparse="strips" forces it, and "auto"
picks it when the cost model below says it is faster than the dense or tile-sparse choice.
Cost model (time of one product, in units of one dense 16 x 4 tile of the SIMD loop): dense = all
tiles; tile-sparse = kept tiles (the density rule above decides dense vs tiles); strips =
STRIP_TILE_COST x stored tiles + STRIP_PANEL_COST x non-empty (row block, panel)s (pointers, index
load, byte permute, a short accumulator chain) + STRIP_EMPTY_PANEL_COST x empty ones (skipped);
"auto" stores strips when that is below the cost of the other choice.
Calibration (this repository's AMD EPYC, AVX512-VBMI + VNNI build, 1 thread, thread CPU time of
IntegerRunner.run on 2-layer LSTMs whose four matrices are strip-pruned with multiple-of-4 counts,
2026-12-07): a dense tile costs 0.68 ns (1024 x 256 matrices) to 0.82 ns (2048 x 512: memory-bound),
a tile-sparse tile 0.75-0.85 ns, a strips tile 0.59-0.66 ns, a non-empty (block, panel) 2.3-2.5 ns,
an empty one ~1 ns; the portable build spends about one dense tile per strips tile with no visible
panel cost. Hence STRIP_TILE_COST = 1, STRIP_PANEL_COST = 3, STRIP_EMPTY_PANEL_COST = 1: a 2048 x 512
matrix (16,384 tiles, 1,024 block-panels) goes strips from ~20 % strip sparsity on, and stays
tile-sparse where whole 16 x 4 tiles are empty or beyond ~95 % sparsity (where the per-panel
overhead outweighs the smaller tiles); unstructured sparsity below ~90 % leaves almost every
16 x 1 strip non-zero and stays dense (at 90 %, 1 - 0.9^16 = 81 % of the strips survive: strips,
1.3x faster in strips_kernel.json's charlstm-512x2-pruned row). Reproduce: benchmarks/strips_bench.py --calibrate 256 512
--variants native (strips_kernel.json "calibration"): e.g. the four 2048 x 512 matrices at 50 / 75 /
90 / 95 % strips took dense 78.6 / 72.6 / 63.4 / 69.3 us, tile-sparse 66.6 / 51.9 / 32.4 / 23.9 us,
strips 64.3 / 38.0 / 21.4 / 18.6 us per step (thread CPU time, the machine under load ~14).

The panels format (panels.py: every row of a 16-row block keeps the same number of codes of each
64-column panel, with byte column offsets: what N:M pruning leaves) packs any matrix; sparse="panels"
forces it, and "auto" picks it when its cost is below the other choices'. Cost: PANEL_GROUP_COST per
stored group (4 codes of each of 16 rows: 64 codes + 64 offsets, one byte permute, one vpdpbusd),
PANEL_BUSY_COST per non-empty (row block, panel), PANEL_EMPTY_COST per empty one. Calibration
(benchmarks/panels_bench.py, same EPYC, native build, the recurrent 2048 x 512 matrices of OBS N:M
1:4 / 1:10 charlstm-512x2, 2026-12-07): a dense tile 0.67 ns, a panels group 1.24-1.29 ns, a non-empty
(block, panel) 0.1-1 ns (noisy); portable: a group ~2.2 dense tiles, no visible panel cost. Hence 2 / 1.5 / 0.5:
N:M 1:4 (4 groups per block-panel) costs 9.5 of the dense 16, 1:10 5.5; 50 % unstructured stays dense.
The rule is the VBMI and portable builds' (and the Cortex-M4's): an AVX2-only build runs those
products at 0.84x / 1.07x of its dense ones (panels_bench.py --variants avx2), so "auto" there would
cost time. Hence `panels_fast`: IntegerRunner passes its kernel build's rs_panels_fast() (1 on
AVX512-VBMI and portable builds), and "auto" considers panels only where it is 1; an export for a
device (portable C) keeps the default True; sparse="panels" forces the format on any build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rnnslim.models.sequence import InputKind, SequenceModel
from rnnslim.quantize.int8.delta import DROWS, Thresholds, delta_plan, pack_columns
from rnnslim.quantize.int8.integer import IntegerRecurrent
from rnnslim.quantize.int8.integer_cells import _matmul, _term
from rnnslim.quantize.int8.nm24 import holds_nm24, nm24_nbytes, pack_nm24
from rnnslim.quantize.int8.panels import pack_panels, panel_counts
from rnnslim.quantize.int8.strips import pack_strips, strip_panel_tiles
from rnnslim.quantize.int8.supported import check_integer_model
from rnnslim.recurrent.gates import CellType

RB, KB = 16, 4  # tile rows x columns (RB, KB in rnnslim_core.h)
SPARSE_MAX_TILE_DENSITY = 0.8  # above this share of non-zero tiles the dense loop is faster
# strips cost model (module docstring), in dense tiles: a stored strips tile, a non-empty (row block,
# panel) (pointers, index load, byte permute), an empty (skipped) one
STRIP_TILE_COST = 1.0
STRIP_PANEL_COST = 3.0
STRIP_EMPTY_PANEL_COST = 1.0
# panels cost model (module docstring), in dense tiles: a stored group, a non-empty / an empty (row block, panel)
PANEL_GROUP_COST = 2.0
PANEL_BUSY_COST = 1.5
PANEL_EMPTY_COST = 0.5
FOLD_MAX_BYTES = 64 << 20  # folded embedding table (V x G*H int32) is built only below this size
CELL_ID = {CellType.LSTM: 0, CellType.GRU: 1, CellType.RNN_TANH: 2}


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


@dataclass
class PackedMatrix:
    rows: int
    cols: int
    w: np.ndarray  # int8: dense (rows_p * cols_p,) or the kept tiles (n_tiles * 64,)
    corr: np.ndarray  # int32 (rows_p,): 128 * row sum (VNNI unsigned-offset correction)
    tile_ptr: np.ndarray | None = None  # int32 (rows_p / 16 + 1,), None = dense
    tile_col: np.ndarray | None = None  # uint16 (n_tiles,): column group of each kept tile
    nm_idx: np.ndarray | None = None  # uint8 2:4 index (nm24.py); w then holds the kept codes
    strip_ptr: np.ndarray | None = None  # int32 (NB * NP + 1,) strips (strips.py); w then holds its tiles
    strip_idx: np.ndarray | None = None  # uint8 (n_tiles * 4,): column offsets inside the panel
    panel_ptr: np.ndarray | None = None  # int32 (NB * NP + 1,) panels (panels.py); w then holds its groups
    panel_idx: np.ndarray | None = None  # uint8 (n_groups * 64,): each code's column offset inside its panel

    @property
    def rows_p(self) -> int:
        return -(-self.rows // RB) * RB

    @property
    def cols_p(self) -> int:
        return -(-max(self.cols, 1) // KB) * KB

    @property
    def sparse(self) -> bool:
        return self.tile_ptr is not None

    @property
    def nm24(self) -> bool:
        return self.nm_idx is not None

    @property
    def strips(self) -> bool:
        return self.strip_ptr is not None

    @property
    def panels(self) -> bool:
        return self.panel_ptr is not None

    @property
    def format(self) -> str:
        """"dense", "tiles" (tile-sparse), "nm24" (2:4), "strips" or "panels"."""
        return "panels" if self.panels else "strips" if self.strips else "nm24" if self.nm24 else "tiles" if self.sparse else "dense"

    @property
    def macs(self) -> int:
        """Multiply-adds one product executes (stored weights, zeros of padding included)."""
        return self.w.size

    @property
    def n_tiles(self) -> int:
        return self.w.size // (RB * KB)

    @property
    def nbytes(self) -> int:
        """Bytes a matrix-vector product reads: weights (kept tiles), VNNI correction, tile index."""
        return sum(a.nbytes for a in self.arrays().values())

    @property
    def tile_density(self) -> float:
        return self.n_tiles / ((self.rows_p // RB) * (self.cols_p // KB))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"w": self.w, "corr": self.corr}
        if self.sparse:
            out |= {"tile_ptr": self.tile_ptr, "tile_col": self.tile_col}
        if self.nm24:
            out |= {"nm_idx": self.nm_idx}
        if self.strips:
            out |= {"strip_ptr": self.strip_ptr, "strip_idx": self.strip_idx}
        if self.panels:
            out |= {"panel_ptr": self.panel_ptr, "panel_idx": self.panel_idx}
        return out


def pack_matrix(w: torch.Tensor | np.ndarray, sparse: bool | str = "auto", panels_fast: bool = True) -> PackedMatrix:
    """(rows, cols) int8 -> PackedMatrix; sparse True / False / "auto" / "nm24" / "strips" / "panels" (see the
    module docstring); panels_fast False: "auto" never picks panels (a build where they are slower)."""
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    if w.ndim != 2 or w.dtype != np.int8:
        raise ValueError(f"pack_matrix needs a 2-D int8 matrix, got {w.dtype} {w.shape}")
    rows, cols = w.shape
    rows_p, cols_p = -(-rows // RB) * RB, -(-max(cols, 1) // KB) * KB
    padded = np.zeros((rows_p, cols_p), dtype=np.int8)
    padded[:rows, :cols] = w
    tiles = padded.reshape(rows_p // RB, RB, cols_p // KB, KB).transpose(0, 2, 1, 3)  # (NB, KG, RB, KB)
    corr = (128 * padded.astype(np.int32).sum(axis=1)).astype(np.int32)
    nonzero = tiles.reshape(tiles.shape[0], tiles.shape[1], -1).any(axis=2)  # (NB, KG)
    try_nm24, choice = sparse == "nm24", sparse
    if sparse in ("auto", "nm24", "strips", "panels"):
        sparse = bool(nonzero.mean() <= SPARSE_MAX_TILE_DENSITY)
    elif not isinstance(sparse, bool):
        raise ValueError(f"sparse must be True, False, 'auto', 'nm24', 'strips' or 'panels', got {sparse!r}")
    other = nonzero.sum() if sparse else nonzero.size  # cost of the dense / tile-sparse choice, in tiles
    strips = strips_cost(padded) if choice == "auto" else np.inf
    if choice == "panels" or (choice == "auto" and panels_fast and panels_cost(padded) < min(other, strips)):
        groups_w, ptr, idx = pack_panels(padded)
        return PackedMatrix(rows, cols, groups_w, corr, panel_ptr=ptr, panel_idx=idx)
    if choice == "strips" or strips < other:
        tiles_w, ptr, idx = pack_strips(padded)
        return PackedMatrix(rows, cols, tiles_w, corr, strip_ptr=ptr, strip_idx=idx)
    if try_nm24 and holds_nm24(padded):
        tiles_bytes = int(nonzero.sum()) * (RB * KB + 2) + 4 * (rows_p // RB + 1) if sparse else rows_p * cols_p
        if nm24_nbytes(rows_p, cols_p) < tiles_bytes:  # cost rule: fewer bytes read (and half the MACs)
            values, index = pack_nm24(padded)
            return PackedMatrix(rows, cols, values, corr, nm_idx=index)
    if not sparse:
        return PackedMatrix(rows, cols, np.ascontiguousarray(tiles).reshape(-1), corr)
    if cols_p // KB > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"a tile-sparse matrix has at most {4 * 65536} columns, got {cols}")
    kept = tiles[nonzero]  # (n_tiles, RB, KB), row block major, column group ascending
    ptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int32)
    col = np.nonzero(nonzero)[1].astype(np.uint16)
    return PackedMatrix(rows, cols, np.ascontiguousarray(kept).reshape(-1), corr, ptr, col)


def strips_cost(padded: np.ndarray) -> float:
    """Time of one strips product of the (rows_p, cols_p) matrix in dense-tile units (module docstring)."""
    tiles = strip_panel_tiles(padded)  # (NB, NP)
    busy = int((tiles > 0).sum())
    return (STRIP_TILE_COST * int(tiles.sum()) + STRIP_PANEL_COST * busy
            + STRIP_EMPTY_PANEL_COST * (tiles.size - busy))


def panels_cost(padded: np.ndarray) -> float:
    """Time of one panels product of the (rows_p, cols_p) matrix in dense-tile units (module docstring)."""
    groups = panel_counts(padded)  # (NB, NP)
    busy = int((groups > 0).sum())
    return PANEL_GROUP_COST * int(groups.sum()) + PANEL_BUSY_COST * busy + PANEL_EMPTY_COST * (groups.size - busy)


@dataclass
class PackedLayer:
    input: int
    hidden: int
    wx: PackedMatrix
    wh: PackedMatrix
    mult_x: np.ndarray  # int32 (rows,)
    shift_x: np.ndarray  # int8 (rows,)
    mult_h: np.ndarray
    shift_h: np.ndarray
    bias: np.ndarray  # int32 (4H,) LSTM/GRU, (H,) RNN
    h_mult: int
    h_shift: int
    cf: int
    sig: np.ndarray  # int16 (1025,): the whole table (an export keeps its lower half: fixedpoint.half_table)
    tanh: np.ndarray
    tx_table: np.ndarray | None = None  # int32 (V * rows,): folded embedding (layer 0 only)
    rev: PackedLayer | None = None  # bidirectional: the backward direction (its own matrices, per-row
    #                                 constants, bias, tx_table; h_mult / h_shift / cf / tables equal these)
    delta_thr: int | None = None  # delta step threshold (delta.py); None: the layer runs dense
    wx_cols: np.ndarray | None = None  # delta: column-blocked W_ih (delta.pack_columns); None: W_ih dense
    wh_cols: np.ndarray | None = None  # delta: column-blocked W_hh

    @property
    def rows(self) -> int:
        return self.wx.rows

    @property
    def directions(self) -> int:
        return 2 if self.rev is not None else 1

    @property
    def chunk_units(self) -> int:
        """Units per chunk of the C step (rs_chunk_units): 16 (LSTM), 32 (GRU), 64 (RNN) where the
        hidden size is a multiple, else 16, else every unit (one chunk)."""
        unit = {4: RB, 3: 2 * RB}.get(self.rows // self.hidden, 4 * RB)
        while unit > RB and self.hidden % unit:
            unit //= 2
        return unit if self.hidden % unit == 0 else self.hidden

    @property
    def chunk_rows(self) -> int:
        """int32 accumulator rows of one chunk (rs_chunk_rows): the gate rows of chunk_units units,
        or every padded row when the hidden size is not a multiple of RB."""
        if self.hidden % RB:
            return self.wx.rows_p
        return self.rows // self.hidden * self.chunk_units

    def nbytes_per_step(self, skip_wx: bool) -> int:
        """Constants one direction reads per step (W_ih and its per-row constants unless `skip_wx`)."""
        wx = 0 if skip_wx else self.wx.nbytes + self.mult_x.nbytes + self.shift_x.nbytes
        return wx + self.wh.nbytes + self.mult_h.nbytes + self.shift_h.nbytes + self.bias.nbytes


INPUT_ID = {InputKind.EMBEDDING: 0, InputKind.IDENTITY: 1, InputKind.LINEAR: 2}


@dataclass
class PackedInput:
    """Float features -> int8 codes: round(x / in_scale) (identity), then the integer input
    projection for "linear" (int8 output codes requantized per row), then its activation table.
    A windowed projection (a Conv1d front end) reads `window` frames of `features // window`
    features, `padding` zero frames at both ends (whole sequences only)."""

    kind: InputKind
    features: int  # the projection's input width (window * frame)
    in_scale: float  # float32
    proj: PackedMatrix | None = None  # linear: (E, F)
    bias: np.ndarray | None = None  # int32 (E,)
    mult: np.ndarray | None = None  # int32 (E,)
    shift: np.ndarray | None = None  # int8 (E,)
    window: int = 1
    padding: int = 0
    act: np.ndarray | None = None  # int8 (256,): the activation of code q is act[q + 128]

    @property
    def frame(self) -> int:
        """Features of one input frame (one step of the caller's input)."""
        return self.features // self.window

    @property
    def windowed(self) -> bool:
        return self.window > 1 or self.padding > 0

    def nbytes(self) -> int:
        act = 0 if self.act is None else self.act.nbytes
        return 0 if self.proj is None else self.proj.nbytes + self.bias.nbytes + self.mult.nbytes + self.shift.nbytes + act


@dataclass
class IntegerProgram:
    cell: CellType
    vocab: int  # 0 for feature models
    embed: int
    out: int
    emb: np.ndarray | None  # int8 (V * E,); None for feature models
    layers: list[PackedLayer]
    dec: PackedMatrix
    dec_bias: np.ndarray  # int32 (O,)
    dec_scale: np.ndarray  # float32 (O,)
    inputs: PackedInput | None = None  # feature models
    readout: str = "all"  # or "last": the decoder runs on the final step only (whole-sequence run)
    tied_embedding: bool = False  # emb is None: the lookup gathers a token's row from dec's tiles (dense)

    @property
    def delta(self) -> bool:
        """Some layer runs the delta step (delta.py)."""
        return any(ly.delta_thr is not None for ly in self.layers)

    @property
    def input_kind(self) -> InputKind:
        return InputKind.EMBEDDING if self.inputs is None else self.inputs.kind

    @property
    def bidirectional(self) -> bool:
        """Some layer is bidirectional: the model runs on whole sequences only (rs_core_run)."""
        return any(ly.rev is not None for ly in self.layers)

    @property
    def whole_sequence_only(self) -> bool:
        """No streaming step: a bidirectional layer, or a windowed input (the output at t reads later frames)."""
        return self.bidirectional or (self.inputs is not None and self.inputs.windowed)

    @property
    def state_len(self) -> int:
        """int16 words of the streaming state: LSTM [h8 | c] per layer, GRU/RNN [h16]; 0 for a
        whole-sequence-only model (no streaming step)."""
        if self.whole_sequence_only:
            return 0
        per = 2 if self.cell is CellType.LSTM else 1
        return sum(per * ly.hidden for ly in self.layers)

    def run_dims(self) -> tuple[int, int, int]:
        """(W, S, nbuf) of rs_run_dims: widest int8 code row of the whole-sequence buffers, int16
        words of the largest one-direction state, number of T x W code buffers (1 or 2)."""
        W = 0 if self.inputs is None else self.embed
        W = max([W] + [ly.directions * ly.hidden for ly in self.layers])
        S = max((2 if self.cell is CellType.LSTM else 1) * ly.hidden for ly in self.layers)
        nbuf = 2 if len(self.layers) + (self.inputs is not None) >= 2 else 1
        return W, S, nbuf

    @property
    def delta_bytes(self) -> int:
        """Bytes of one stream's delta state (rs_core_delta_bytes: int64 counters, per layer M_x, M_h
        int32 [rows_c] and last_x, last_h int8 [cols_p], then 3 x (max_cols + 4) int32 scratch);
        0 for a model without delta layers."""
        if not self.delta:
            return 0
        off = 8 * (2 + 2 * len(self.layers))
        for ly in self.layers:
            off += 8 * (-(-ly.rows // DROWS) * DROWS) + ly.wx.cols_p + ly.wh.cols_p
        return -(-off // 8) * 8 + 4 * 3 * (self.max_cols + 4)

    @property
    def workspace_fixed_bytes(self) -> int:
        """Workspace bytes of a whole-sequence run independent of T: alignment slack + one state
        (+ a delta state) (+ the code rows of the 2p - k + 1 extra output steps of a windowed input)."""
        _, S, _ = self.run_dims()
        extra = 0
        if self.inputs is not None and self.inputs.windowed:
            extra = max(0, 2 * self.inputs.padding - self.inputs.window + 1) * self.workspace_bytes_per_step
        return 63 + -(-2 * S // 64) * 64 + -(-self.delta_bytes // 64) * 64 + extra

    @property
    def workspace_bytes_per_step(self) -> int:
        W, _, nbuf = self.run_dims()
        return nbuf * W

    def workspace_bytes(self, steps: int) -> int:
        """Bytes of the caller's workspace for a whole-sequence run of `steps` (rs_core_run_workspace)."""
        return self.workspace_fixed_bytes + self.workspace_bytes_per_step * max(steps, 0)

    @property
    def max_cols(self) -> int:
        proj = [self.inputs.proj.cols_p] if self.inputs is not None and self.inputs.proj is not None else []
        return max([KB, self.dec.cols_p] + proj + [m.cols_p for ly in self.layers for m in (ly.wx, ly.wh)])

    @property
    def max_rows(self) -> int:
        """int32 rows of the output accumulators: the decoder's, the input projection's."""
        proj = [self.inputs.proj.rows_p] if self.inputs is not None and self.inputs.proj is not None else []
        return max([RB, self.dec.rows_p] + proj)

    @property
    def max_chunk(self) -> int:
        """int32 rows of each of the step's two gate accumulators (one chunk of units, rs_chunk_rows)."""
        return max([RB] + [ly.chunk_rows for ly in self.layers])

    def bytes_per_step(self) -> int:
        """Bytes of constants one step reads (the numerator of the memory-bandwidth floor): the
        embedding row (or folded table row), every matrix, per-row constants, tables, decoder."""
        total = self.embed if self.layers[0].tx_table is None else 4 * self.layers[0].rows
        if self.inputs is not None:
            total += self.inputs.nbytes()
        for k, ly in enumerate(self.layers):
            folded = k == 0 and ly.tx_table is not None
            total += sum(d.nbytes_per_step(folded) for d in (ly, ly.rev) if d is not None)
            if folded and ly.rev is not None:
                total += 4 * ly.rows  # the backward direction's table row
            total += ly.sig.nbytes + ly.tanh.nbytes  # the host kernel holds each layer's own copy
        return total + self.dec.nbytes + self.dec_bias.nbytes + self.dec_scale.nbytes

    def step_matrices(self) -> list[PackedMatrix]:
        """The matrices one streaming step multiplies (W_ih of layer 0 not when its table is folded)."""
        mats = [self.inputs.proj] if self.inputs is not None and self.inputs.proj is not None else []
        for k, ly in enumerate(self.layers):
            for d in (ly, ly.rev):
                if d is not None:
                    mats += [d.wh] if k == 0 and d.tx_table is not None else [d.wx, d.wh]
        return mats + [self.dec]

    def macs_per_step(self) -> int:
        """Multiply-adds the matrix products of one step execute in their packed formats (sparse
        formats: only the stored weights; the dense product: every padded weight)."""
        return sum(m.macs for m in self.step_matrices())

    def dense_macs_per_step(self) -> int:
        """Multiply-adds of the same step with every matrix dense (rows_p x cols_p), for comparison."""
        return sum(m.rows_p * m.cols_p for m in self.step_matrices())

    def work_note(self) -> str:
        """One line on what a step executes and reads: MACs (of the dense count when some matrix is
        sparse), bytes of constants, and the matrix formats, e.g. "per step 0.83M MACs (of 3.19M
        dense), 0.98 MB read; matrices: 3 strips, 1 dense"."""
        macs, dense = self.macs_per_step(), self.dense_macs_per_step()
        counts: dict[str, int] = {}
        for m in self.step_matrices():
            counts[m.format] = counts.get(m.format, 0) + 1
        of = f" (of {dense / 1e6:.2f}M dense)" if macs != dense else ""
        formats = ", ".join(f"{n} {f}" for f, n in sorted(counts.items(), key=lambda fn: (-fn[1], fn[0])))
        return f"per step {macs / 1e6:.2f}M MACs{of}, {self.bytes_per_step() / 1e6:.2f} MB read; matrices: {formats}"

    def scratch_bytes(self) -> int:
        """RAM of the step's scratch buffers (rs_model): int8 codes xbuf, hbuf, ybuf (max_cols each) and
        ubuf (2 max_cols), int32 gate accumulators ax, ah (max_chunk each: one chunk of units) and the
        output accumulators acc (max_rows)."""
        return 5 * self.max_cols + 4 * (2 * self.max_chunk + self.max_rows)

    def resident_bytes(self) -> int:
        """Memory the host kernel holds for this model at run time: every packed array, including
        tables built at load (the folded embedding table: V x G*H int32), plus the step's scratch
        buffers, the streaming state and (delta layers) one stream's delta state. This, not the
        artifact on disk, is the RAM figure."""
        return _array_bytes(self) + self.scratch_bytes() + 2 * self.state_len + self.delta_bytes

    @classmethod
    def from_model(cls, model: SequenceModel, fold_embedding: bool | None = None,
                   sparse: bool | str = "auto", delta: Thresholds | str = "model",
                   panels_fast: bool = True) -> IntegerProgram:
        """Pack an integer int8 model (check_integer_model(model, whole_sequence=True) must accept it:
        bidirectional layers pack their backward direction into PackedLayer.rev). `delta`: the
        delta thresholds per layer (delta.resolve_thresholds), "model" = the model's own;
        `panels_fast`: whether "auto" may pick the panels format (the target build's rs_panels_fast)."""
        check_integer_model(model, whole_sequence=True)
        plan = delta_plan(model, delta)
        dec = model.decoder
        cell = model.rnn.cell

        def direction(layer: IntegerRecurrent, k: int) -> PackedLayer:
            d = layer.direction(k)
            return PackedLayer(
                input=layer.input_size, hidden=layer.hidden_size,
                wx=pack_matrix(d.w_ih, sparse, panels_fast), wh=pack_matrix(d.w_hh, sparse, panels_fast),
                mult_x=_np(d.mult_ih, np.int32), shift_x=_np(d.shift_ih, np.int8),
                mult_h=_np(d.mult_hh, np.int32), shift_h=_np(d.shift_hh, np.int8), bias=_np(d.bias, np.int32),
                h_mult=int(layer.h_mult), h_shift=int(layer.h_shift), cf=int(layer.cell_frac),
                sig=_np(layer.sig_lut, np.int16), tanh=_np(layer.tanh_lut, np.int16))

        layers = []
        for layer, dp in zip(model.rnn.layers, plan):
            packed = direction(layer, 0)
            if layer.bidirectional:
                packed.rev = direction(layer, 1)
            if dp is not None:  # (threshold, W_ih too): token inputs do not persist, their W_ih runs dense
                d = layer.direction(0)
                packed.delta_thr, packed.wh_cols = dp[0], pack_columns(d.w_hh)
                packed.wx_cols = pack_columns(d.w_ih) if dp[1] else None
            layers.append(packed)
        common = dict(cell=cell, embed=model.rnn.layers[0].input_size, out=dec.out_features, layers=layers,
                      dec=pack_matrix(dec.weight, sparse, panels_fast), dec_bias=_np(dec.bias, np.int32),
                      dec_scale=_np(dec.out_scale.float(), np.float32), readout=model.spec.readout.value)
        kind = model.spec.input_kind
        if kind is InputKind.IDENTITY:
            inputs = PackedInput(kind, model.spec.input_size, float(model.rnn.layers[0].x_scale))
            return cls(vocab=0, emb=None, inputs=inputs, **common)
        if kind is InputKind.LINEAR:
            p, act = model.input_proj, getattr(model, "input_act", None)
            inputs = PackedInput(kind, p.in_features, float(p.in_scale), pack_matrix(p.weight, sparse, panels_fast),
                                 _np(p.bias, np.int32), _np(p.out_mult, np.int32), _np(p.out_shift, np.int8),
                                 window=model.spec.input_window, padding=model.spec.input_padding,
                                 act=None if act is None else _np(act.table, np.int8))
            return cls(vocab=0, emb=None, inputs=inputs, **common)
        emb = model.embedding
        V = emb.num_embeddings
        tied = is_tied_table(model)
        if tied:  # one table: the decoder's packed tiles, read row by row by the lookup (needs them dense)
            common["dec"] = pack_matrix(dec.weight, False)
        first = model.rnn.layers[0].direction(0)
        if fold_embedding is None:  # a table row replaces the layer-0 input matmul when it reads fewer bytes
            fold_embedding = V * 4 * first.w_ih.shape[0] <= min(FOLD_MAX_BYTES, 4 * first.w_ih.numel())
        if layers[0].wx_cols is not None:  # a delta step on the embedding codes needs them: no table
            fold_embedding = False
        if fold_embedding:  # the layer-0 input terms of every token: the same integers the step computes
            for k, packed in enumerate((layers[0], layers[0].rev)):
                if packed is None:
                    continue
                d = model.rnn.layers[0].direction(k)
                tx = _term(_matmul(emb.weight.to(torch.int64), d.w_ih), d.mult_ih, d.shift_ih)
                packed.tx_table = _np(tx, np.int32).reshape(-1)
        return cls(vocab=V, emb=None if tied else _np(emb.weight, np.int8).reshape(-1), tied_embedding=tied, **common)


def is_tied_table(model: SequenceModel) -> bool:
    """The integer decoder's int8 weight is the integer embedding's table (IntegerLinear.tied_to)."""
    emb, dec = getattr(model, "embedding", None), getattr(model, "decoder", None)
    w, e = getattr(dec, "weight", None), getattr(emb, "weight", None)
    return (isinstance(w, torch.Tensor) and isinstance(e, torch.Tensor) and w.dtype == e.dtype == torch.int8
            and w.shape == e.shape and w.data_ptr() == e.data_ptr())


def _array_bytes(obj) -> int:
    """Bytes of every numpy array reachable through the dataclass fields of `obj` (each counted once)."""
    seen: set[int] = set()

    def walk(o) -> int:
        if isinstance(o, np.ndarray):
            if id(o) in seen:
                return 0
            seen.add(id(o))
            return o.nbytes
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return sum(walk(getattr(o, f.name)) for f in dataclasses.fields(o))
        if isinstance(o, (list, tuple)):
            return sum(walk(x) for x in o)
        return 0

    return walk(obj)
