"""The 2:4 matrix format of the integer kernel (rnnslim_core.h matvec_nm24): N:M pruning made fast.

A matrix whose every row keeps at most 2 non-zeros in each group of 4 columns (the groups of
rnnslim's N:M pruning with m = 4, aligned to column 0) stores only 2 int8 codes per group and
their 2-bit column offsets: 5/8 of the dense bytes, half the multiply-adds, and the same exact
int32 sums as the dense product (only zero products are skipped).

Layout, for the matrix zero-padded to (rows_p, cols_p) (multiples of 16 and 4, as every packed
matrix), KG = cols_p / 4 groups per row:
  values  int8  [rows_p][KG][2]   the kept codes of each group in column order (zero-filled)
  index   uint8 [rows_p][(KG + 1) // 2]  offsets i0 | i1 << 2 of group g in nibble g & 1 of
                                         byte g >> 1 (low nibble first)
A group with fewer than 2 non-zeros fills the remaining slots with code 0 at an offset not yet
used, so a slot never repeats a column.
"""

from __future__ import annotations

import numpy as np

GROUP, KEEP = 4, 2  # columns per group, codes kept per group


def holds_nm24(padded: np.ndarray) -> bool:
    """True when every row of the (rows_p, cols_p) int8 matrix has <= 2 non-zeros per group of 4 columns."""
    rows_p, cols_p = padded.shape
    return bool(((padded.reshape(rows_p, cols_p // GROUP, GROUP) != 0).sum(axis=2) <= KEEP).all())


def pack_nm24(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows_p, cols_p) int8 matrix (holds_nm24) -> (values (rows_p * KG * 2,) int8, index (rows_p * NI,) uint8)."""
    if not holds_nm24(padded):
        raise ValueError("the matrix is not 2:4 (some row has more than 2 non-zeros in a group of 4 columns): "
                         "prune it with N:M 2:4 or pack it dense / tile-sparse")
    rows_p, cols_p = padded.shape
    kg = cols_p // GROUP
    groups = padded.reshape(rows_p, kg, GROUP)  # (rows_p, KG, 4)
    # a stable sort of "is zero" puts the non-zero columns first, in column order; the first two
    # offsets then cover the kept codes and (where fewer) distinct zero columns
    order = np.argsort(groups == 0, axis=2, kind="stable")[:, :, :KEEP]  # (rows_p, KG, 2)
    order = np.sort(order, axis=2)  # column order inside the group (a zero slot may move first)
    values = np.take_along_axis(groups, order, axis=2)  # (rows_p, KG, 2)
    nib = (order[:, :, 0] | (order[:, :, 1] << 2)).astype(np.uint8)  # (rows_p, KG)
    if kg % 2:
        nib = np.concatenate([nib, np.zeros((rows_p, 1), np.uint8)], axis=1)
    index = (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8)  # (rows_p, NI)
    return np.ascontiguousarray(values).reshape(-1), np.ascontiguousarray(index).reshape(-1)


def unpack_nm24(values: np.ndarray, index: np.ndarray, rows_p: int, cols_p: int) -> np.ndarray:
    """The (rows_p, cols_p) int8 matrix of pack_nm24's arrays (its inverse, for checks)."""
    kg = cols_p // GROUP
    ni = (kg + 1) // 2
    idx = index.reshape(rows_p, ni)
    nib = np.stack([idx & 15, idx >> 4], axis=2).reshape(rows_p, 2 * ni)[:, :kg]  # (rows_p, KG)
    offsets = np.stack([nib & 3, (nib >> 2) & 3], axis=2).astype(np.int64)  # (rows_p, KG, 2)
    out = np.zeros((rows_p, kg, GROUP), np.int8)
    np.put_along_axis(out, offsets, values.reshape(rows_p, kg, KEEP), axis=2)
    return out.reshape(rows_p, cols_p)


def nm24_nbytes(rows_p: int, cols_p: int) -> int:
    """Bytes of the 2:4 values and index of a (rows_p, cols_p) matrix (what one product reads, less corr)."""
    kg = cols_p // GROUP
    return rows_p * (kg * KEEP + (kg + 1) // 2)
