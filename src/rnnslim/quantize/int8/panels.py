"""The "panels" matrix format of the integer kernel (rnnslim_panels.h matvec_panels): balanced
per-row sparsity (N:M pruning) made fast (issue 22).

Strips (strips.py) need whole 16 x 1 column strips pruned, which costs accuracy; N:M pruning keeps
each row's own columns but the same NUMBER of them per row. Panels store exactly that:
for the int8 matrix W zero-padded to (rows_p, cols_p) (multiples of RB = 16 and KB = 4),
  row block b = rows 16 b .. 16 b + 15, panel p = columns 64 p .. 64 p + 63 (the last ends at cols_p),
  k(b, p)   = the most non-zeros any row of block b has in panel p, rounded up to a multiple of 4;
every row of block b stores k(b, p) codes of panel p, each with its column offset inside the panel
(0 .. 63, one byte). A row with fewer non-zeros fills its slots with code 0 at the smallest columns
of the panel it does not use (a slot never repeats a column; the panel is wide enough because its
width is a multiple of 4). Any matrix packs exactly; it wastes nothing when every row of a block
keeps the same multiple of 4 in a panel: N:M pruning with m = 64 (OBSPruning(pattern="nm", n=16,
m=64) is 75 %) or with m in {4, 8, 16} (1:4, 2:8, 1:16, ...: m divides 64, so a panel holds whole groups).

Storage (PackedMatrix fields; NB = rows_p / 16, NP = ceil(cols_p / 64)); a "group" is 4 slots of
every row of a block:
  w          int8   [n_groups][16][4]  group g: lane r (row 16 b + r) holds its 4 codes, in slot order
                                       (the layout of a dense tile: 64 contiguous bytes)
  panel_ptr  int32  [NB * NP + 1]      groups of (b, p) are panel_ptr[b NP + p] .. panel_ptr[b NP + p + 1]
  panel_idx  uint8  [n_groups][16][4]  the column offset (inside panel p) of each code of w
  corr       int32  [rows_p]           128 * row sum (padding slots hold code 0: the row sums are unchanged)
Bytes read per product: 128 per group + 4 (NB NP + 1) + 4 rows_p; multiply-adds 64 per group.
The products are exact: the same int8 x int8 products summed in int32 as the dense one, minus
products with a zero weight.
"""

from __future__ import annotations

import numpy as np

from rnnslim.quantize.int8.strips import KB, PANEL, RB, strip_panels


def panel_counts(padded: np.ndarray) -> np.ndarray:
    """(NB, NP) int: groups of 4 slots the panels format stores per (row block, panel) of the
    (rows_p, cols_p) int8 matrix (the block's most non-zeros of a row in the panel, / 4 rounded up)."""
    rows_p, cols_p = padded.shape
    n_panels = strip_panels(cols_p)
    nz = np.pad(padded != 0, ((0, 0), (0, n_panels * PANEL - cols_p)))  # (rows_p, NP * 64)
    per_row = nz.reshape(rows_p, n_panels, PANEL).sum(axis=2)  # (rows_p, NP)
    return -(-per_row.reshape(rows_p // RB, RB, n_panels).max(axis=1) // KB)  # (NB, NP)


def panel_group_count(padded: np.ndarray) -> int:
    """Groups (64 codes + 64 offsets each) the panels format stores for the (rows_p, cols_p) int8 matrix."""
    return int(panel_counts(padded).sum())


def panels_nbytes(rows_p: int, cols_p: int, n_groups: int) -> int:
    """Bytes one product reads: codes, column offsets, pointers (the VNNI correction not included)."""
    return n_groups * 2 * RB * KB + 4 * ((rows_p // RB) * strip_panels(cols_p) + 1)


def pack_panels(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows_p, cols_p) int8 matrix -> (w (n_groups * 64,) int8, panel_ptr int32, panel_idx (n_groups * 64,) uint8)."""
    rows_p, cols_p = padded.shape
    if rows_p % RB or cols_p % KB:
        raise ValueError(f"pack_panels needs a matrix padded to multiples of ({RB}, {KB}), got {padded.shape}")
    counts = panel_counts(padded)  # (NB, NP)
    codes, index, ptr = [], [], [0]
    for b in range(rows_p // RB):
        block = padded[b * RB:(b + 1) * RB]  # (16, cols_p)
        for p in range(strip_panels(cols_p)):
            lo, hi = p * PANEL, min(cols_p, (p + 1) * PANEL)
            k = KB * int(counts[b, p])
            if k:
                part = block[:, lo:hi]  # (16, width)
                # a stable sort of "is zero" puts each row's non-zero columns first (ascending), then
                # its zero columns (ascending): the first k are the kept codes and the padding slots
                cols = np.argsort(part == 0, axis=1, kind="stable")[:, :k]  # (16, k)
                vals = np.take_along_axis(part, cols, axis=1)  # (16, k)
                codes.append(vals.reshape(RB, k // KB, KB).transpose(1, 0, 2))  # (k / 4, 16, 4)
                index.append(cols.astype(np.uint8).reshape(RB, k // KB, KB).transpose(1, 0, 2))
            ptr.append(ptr[-1] + k // KB)
    if not codes:
        return np.zeros(0, np.int8), np.asarray(ptr, np.int32), np.zeros(0, np.uint8)
    w = np.ascontiguousarray(np.concatenate(codes)).reshape(-1).astype(np.int8)
    idx = np.ascontiguousarray(np.concatenate(index)).reshape(-1).astype(np.uint8)
    return w, np.asarray(ptr, np.int32), idx


def unpack_panels(w: np.ndarray, ptr: np.ndarray, idx: np.ndarray, rows_p: int, cols_p: int) -> np.ndarray:
    """The (rows_p, cols_p) int8 matrix of pack_panels' arrays (its inverse, for checks)."""
    out = np.zeros((rows_p, cols_p), np.int8)
    n_panels = strip_panels(cols_p)
    codes, offsets = w.reshape(-1, RB, KB), idx.reshape(-1, RB, KB).astype(np.int64)
    rows = np.arange(RB)[:, None]  # (16, 1)
    for bp in range(len(ptr) - 1):
        b, p = divmod(bp, n_panels)
        for g in range(ptr[bp], ptr[bp + 1]):
            out[b * RB + rows, p * PANEL + offsets[g]] += codes[g]  # padding slots add 0
    return out
