"""The "strips" matrix format of the integer kernel (rnnslim_core.h matvec_strips): column strips
within row blocks, the fine-grained sparsity the int8 kernel runs fast (issue 22).

Pattern (the contract with the pruning side: OBSPruning(pattern="strips"), which keeps a multiple
of 4 strips per (block, panel); plain 16x1 block pruning breaks that rule and is twice as lossy.
Accuracy: 16-row strips cost +31..+53 % test loss against unstructured OBS at 75-90 % on the
reference models (benchmarks/results/strip_pruning_*.json), so N:M-style per-row sparsity is the
accuracy-friendly pattern; strips remain the fastest format). For the int8 matrix W (rows = output
rows as stored, (G*H, in) for a recurrent matrix) zero-padded to (rows_p, cols_p) (multiples of
RB = 16 and KB = 4, as every packed matrix),
  row block  b = rows 16 b .. 16 b + 15 (padded rows are zero),
  panel      p = columns 64 p .. 64 p + 63 (the last panel ends at cols_p),
  kept(b, p) = the columns c of panel p where some row of block b has W[r, c] != 0
               (a "16 x 1 strip": column c restricted to the 16 rows of block b).
Any matrix packs exactly (only all-zero strips are dropped). It is fast when pruning zeroes whole
16 x 1 strips; it wastes nothing when |kept(b, p)| is a multiple of 4 for every (b, p): otherwise
the packer pads that list with zero-weight columns of the panel (the smallest columns not kept)
up to the next multiple of 4, costing up to 3 columns of multiply-adds and bytes per (b, p).
A pruner targeting this format should therefore keep, per (16-row block, 64-column panel), a
number of non-zero strips that is a multiple of 4.

Storage (PackedMatrix fields; NB = rows_p / 16 row blocks, NP = ceil(cols_p / 64) panels):
  w          int8   [n_tiles][16][4]  tiles of the stored columns: (b, p) ascending, inside a
                                      (b, p) the stored columns ascending, grouped by 4; one tile
                                      is 64 contiguous bytes laid out as a dense tile (rows in
                                      the lanes, 4 codes per row)
  strip_ptr  int32  [NB * NP + 1]     tiles of (b, p) are w[strip_ptr[b NP + p] .. strip_ptr[b NP + p + 1])
  strip_idx  uint8  [n_tiles * 4]     the stored columns as offsets inside their panel (0 .. 63),
                                      4 per tile, in the tile's column order
  corr       int32  [rows_p]          128 * row sum (the VNNI offset correction; dropped strips are
                                      zero, so the kept weights' row sums are the full row sums)
Bytes read per product: 68 per tile + 4 (NB NP + 1) + 4 rows_p; multiply-adds 64 per tile.
The products are exact: the same int8 x int8 products summed in int32 as the dense one, minus
products with a zero weight.
"""

from __future__ import annotations

import numpy as np

RB, KB = 16, 4  # tile rows x columns (rnnslim_core.h)
PANEL = 64  # columns per panel: one 64-byte vector of input codes, gathered with one byte permute


def strip_panels(cols_p: int) -> int:
    """Number of 64-column panels of a matrix with cols_p (padded) columns."""
    return -(-cols_p // PANEL)


def strip_columns(padded: np.ndarray) -> np.ndarray:
    """(NB, cols_p) bool: the 16 x 1 strips of the (rows_p, cols_p) int8 matrix holding a non-zero."""
    rows_p, cols_p = padded.shape
    return (padded.reshape(rows_p // RB, RB, cols_p) != 0).any(axis=1)


def strip_panel_tiles(padded: np.ndarray) -> np.ndarray:
    """(NB, NP) int: tiles the strips format stores per (row block, panel) of the (rows_p, cols_p)
    int8 matrix (its kept strips rounded up to a multiple of 4, / 4), without packing it."""
    nz = strip_columns(padded)
    nb, cols_p = nz.shape
    pad = strip_panels(cols_p) * PANEL - cols_p
    per_panel = np.pad(nz, ((0, 0), (0, pad))).reshape(nb, -1, PANEL).sum(axis=2)  # (NB, NP)
    return -(-per_panel // KB)


def strip_tile_count(padded: np.ndarray) -> int:
    """Tiles the strips format stores for the (rows_p, cols_p) int8 matrix."""
    return int(strip_panel_tiles(padded).sum())


def strips_nbytes(rows_p: int, cols_p: int, n_tiles: int) -> int:
    """Bytes one product reads: tiles, column offsets, pointers (the VNNI correction not included)."""
    return n_tiles * (RB * KB + KB) + 4 * ((rows_p // RB) * strip_panels(cols_p) + 1)


def pack_strips(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows_p, cols_p) int8 matrix -> (w (n_tiles * 64,) int8, strip_ptr int32, strip_idx (n_tiles * 4,) uint8)."""
    rows_p, cols_p = padded.shape
    if rows_p % RB or cols_p % KB:
        raise ValueError(f"pack_strips needs a matrix padded to multiples of ({RB}, {KB}), got {padded.shape}")
    nz = strip_columns(padded)
    tiles, index, ptr = [], [], [0]
    for b in range(rows_p // RB):
        block = padded[b * RB:(b + 1) * RB]  # (16, cols_p)
        for p in range(strip_panels(cols_p)):
            lo, hi = p * PANEL, min(cols_p, (p + 1) * PANEL)
            kept = np.flatnonzero(nz[b, lo:hi])
            short = -len(kept) % KB
            if short:  # pad with the smallest zero columns of the panel (it has room: hi - lo is a multiple of 4)
                kept = np.sort(np.concatenate([kept, np.flatnonzero(~nz[b, lo:hi])[:short]]))
            n = len(kept) // KB
            tiles.append(block[:, lo + kept].reshape(RB, n, KB).transpose(1, 0, 2))  # (n, 16, 4)
            index.append(kept.astype(np.uint8))
            ptr.append(ptr[-1] + n)
    w = np.ascontiguousarray(np.concatenate(tiles)).reshape(-1).astype(np.int8)
    return w, np.asarray(ptr, np.int32), np.concatenate(index).astype(np.uint8)


def unpack_strips(w: np.ndarray, ptr: np.ndarray, idx: np.ndarray, rows_p: int, cols_p: int) -> np.ndarray:
    """The (rows_p, cols_p) int8 matrix of pack_strips' arrays (its inverse, for checks)."""
    out = np.zeros((rows_p, cols_p), np.int8)
    n_panels = strip_panels(cols_p)
    tiles = w.reshape(-1, RB, KB)
    for bp in range(len(ptr) - 1):
        b, p = divmod(bp, n_panels)
        for t in range(ptr[bp], ptr[bp + 1]):
            cols = p * PANEL + idx[KB * t:KB * (t + 1)].astype(np.int64)
            out[b * RB:(b + 1) * RB, cols] = tiles[t]
    return out
