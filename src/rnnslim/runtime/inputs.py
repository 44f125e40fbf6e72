"""Inputs to an exported model, checked before they reach C.

ctypes converts silently: 2**32 + 5 becomes token 5, 5.9 and "5" and True become tokens too.
So a token is a Python or numpy integer (not bool) in [0, vocab), a token sequence an
integer array (not bool, not float, not object), and features finite float32 of the exact
shape the library was compiled for.
"""

from __future__ import annotations

import numpy as np


def token_id(x, vocab: int) -> int:
    """`x` as a C int32 token: TypeError unless an integer, IndexError unless 0 <= x < vocab."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"a token is an integer id in [0, {vocab}), got {type(x).__name__} {str(x)[:40]!r}")
    if not 0 <= x < vocab:
        raise IndexError(f"token {x} is outside the vocabulary [0, {vocab})")
    return int(x)


def token_ids(inputs, vocab: int) -> np.ndarray:
    """A token sequence as contiguous int32 (T,): integers only, each in [0, vocab)."""
    ids = np.asarray(inputs)
    if ids.size == 0 and ids.dtype.kind == "f":  # [] parses as float64: an empty sequence
        ids = ids.astype(np.int64)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"tokens must be integer ids in [0, {vocab}), got an array of {ids.dtype}")
    if ids.ndim != 1:
        raise ValueError(f"tokens must be one sequence (T,), got shape {ids.shape}")
    bad = np.flatnonzero((ids < 0) | (ids >= vocab))
    if bad.size:
        i = int(bad[0])
        raise IndexError(f"token {ids[i]} at position {i} is outside the vocabulary [0, {vocab})")
    return np.ascontiguousarray(ids, np.int32)


def _finite_floats(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be numbers, got an array of {a.dtype}")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
        a = np.ascontiguousarray(a, np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} must be finite (NaN or inf, or a value beyond float32, found)")
    return a


def features_vector(x, features: int) -> np.ndarray:
    """One step's features: a contiguous float32 (F,) array of finite values (not copied, so a
    pointer to it stays valid while the caller holds `x`)."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (features,) and x.flags.c_contiguous):
        raise ValueError(f"this model takes a contiguous float32 array of {features} features per step")
    if not np.isfinite(x).all():
        raise ValueError("features must be finite (NaN or inf found)")
    return x


def feature_rows(inputs, features: int) -> np.ndarray:
    """A feature sequence as contiguous float32 (T, F), finite."""
    a = _finite_floats(inputs, "features")
    if a.ndim != 2 or a.shape[1] != features:
        raise ValueError(f"features must have shape (T, {features}), got {a.shape}")
    return a


def _kind(v) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype} array {v.shape}"
    return type(v).__name__


def check_step_order(x, state, name: str, unit: str) -> None:
    """TypeError when step's arguments come in C's order (state first, then the input).

    Python's step(x, state=None) takes the input first; C's NAME_step(&state, x, logits) the
    state first. A state is an int16 array (new_state()); no input is: a token is an integer,
    features are float32. `unit`: "token" or "features" (named in the message)."""
    swapped = isinstance(x, np.ndarray) and x.dtype == np.int16
    if swapped or (state is not None and not isinstance(state, np.ndarray)):
        verb = "come" if unit.endswith("s") else "comes"
        raise TypeError(f"step({unit}, state): the {unit} {verb} first, then the state from new_state() (the "
                        f"reverse of C's {name}_step(&state, {unit}, logits)); got step({_kind(x)}, {_kind(state)})")
