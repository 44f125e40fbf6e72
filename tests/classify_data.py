"""Synthetic classification data for the tests (a helper module like compilers.py; the
`tiny_classify_task` fixture in conftest.py builds a task from it)."""

from __future__ import annotations

import csv

import numpy as np


def make_sequences(n: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Class 'up' rises, class 'down' falls (feature 0); feature 1 is noise. Lengths 4..10."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = "up" if i % 2 == 0 else "down"
        T = int(rng.integers(4, 11))
        ramp = np.linspace(0, 3, T) * (1 if label == "up" else -1) + 5
        out.append((label, np.stack([ramp + 0.1 * rng.standard_normal(T), rng.standard_normal(T)], 1)))
    return out


def write_long_csv(path, seqs, shuffle_rows=True, seed=0):
    """One row per time step: id, t, f0, f1, label (rows shuffled unless told otherwise)."""
    rows = [[f"s{i}", t, *x[t], label] for i, (label, x) in enumerate(seqs) for t in range(len(x))]
    if shuffle_rows:  # rows of one sequence need not be adjacent or ordered
        rows = [rows[j] for j in np.random.default_rng(seed).permutation(len(rows))]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "t", "f0", "f1", "label"])
        w.writerows(rows)
    return path
