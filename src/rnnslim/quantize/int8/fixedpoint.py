"""Fixed-point building blocks of the fully integer path (bit-exact contract with kernel.c).

Every function here works on integer torch tensors (int32/int64) and is mirrored line by
line in kernel.c; a C port must reproduce them exactly. Conventions:

    Qm.n           a signed integer v meaning the real value v * 2^-n
    rshr(v, n)     rounding right shift, round half up:  (v + 2^(n-1)) >> n   for n >= 1,
                   v for n == 0. ">>" is an arithmetic shift (floor) on negative values,
                   which C leaves implementation-defined but every mainstream compiler
                   (gcc, clang, MSVC, armcc, IAR) implements.
    requant(a, M, n)
                   a * real, with real = M * 2^-n encoded by quantize_multiplier:
                   (a * M + 2^(n-1)) >> n computed in int64 (|a| < 2^32 and M < 2^31, so
                   the product fits), 1 <= n <= 62.
    sat(v, lo, hi) clamp.

Formats (constants below):
    gate pre-activations   Q.12 in int32, each requantized term saturated to +-PRE_SAT
    gate outputs           Q0.15 (sigmoid in [0, 32767], tanh in [-32767, 32767])
    cell state (LSTM)      int16 in Q(15-cf).cf, cf chosen per layer from calibration
    hidden (GRU, RNN)      int16 in Q0.15 (the recurrent state), int8 copy for matmuls

Lookup tables: LUT_SIZE = 1025 int16 entries of f(-16 + k/32), k = 0..1024, values
round(32768 f) clamped to the output range (f = sigmoid or tanh). Evaluation of a Q.12
pre-activation p (linear interpolation between neighbouring entries):

    u    = sat(p, -65536, 65535) + 65536       # 0 .. 131071  (domain [-16, 16))
    k    = u >> 7                              # 0 .. 1023    (table step 1/32 = 128 Q.12 units)
    frac = u & 127
    out  = T[k] + (((T[k+1] - T[k]) * frac + 64) >> 7)

An exported C model stores the lower half of each table only (k = 0..512, half_table): both tables
are mirror-symmetric, T[k] = min(32767, M - T[1024 - k]) with M = 32768 (sigmoid) or 0 (tanh); the
host kernel (IntegerRunner) keeps whole tables.

The interpolation error is below 1e-4 for tanh and 2e-5 for sigmoid; inputs outside
[-16, 16) saturate (sigmoid(16) = 1 - 1e-7 is already the top code). The tables are
generated once in float64 here and stored in every integer layer, so a C port copies the
integers rather than recomputing them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

PRE_FRAC = 12  # gate pre-activations are Q.12
PRE_SAT = 1 << 24  # each requantized gate term saturates at +-2^24 (+-4096.0): sums stay in int32
GATE_FRAC = 15  # gate outputs (sigmoid, tanh) are Q0.15
GATE_MAX = (1 << 15) - 1
LUT_SIZE = 1025
LUT_HALF = LUT_SIZE // 2 + 1  # entries the C kernel stores: k = 0 .. 512 (half_table)
LUT_SHIFT = 7  # table step is 2^7 Q.12 units = 1/32
LUT_LO = -(1 << 16)  # -16.0 in Q.12
LUT_HI = (1 << 16) - 1
Q8_MAX = 127  # int8 activations and weights use the symmetric range [-127, 127]
INT16_MAX = (1 << 15) - 1


# --- multipliers ------------------------------------------------------------------------


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Encode positive reals as (M, n) with real ~= M * 2^-n, M in [2^30, 2^31), 1 <= n <= 62.

    Vectorised over numpy float64 arrays; deterministic (frexp is exact and the rounding
    of m * 2^31 is the only rounding). Multipliers below 2^-32 lose precision (M is
    shifted down so that n stays <= 62); multipliers of 2^30 or more are rejected.
    """
    r = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("requantization multipliers must be positive and finite "
                         "(a zero or NaN scale in the model?)")
    m, e = np.frexp(r)  # r = m * 2^e, m in [0.5, 1)
    M = np.round(m * 2.0**31).astype(np.int64)
    top = M == (1 << 31)
    M[top] //= 2
    e = e + top
    n = 31 - e.astype(np.int64)
    if np.any(n < 1):
        raise ValueError(f"requantization multiplier {r.max():.3g} is too large (>= 2^30); "
                         "the scales of this layer are inconsistent")
    over = np.maximum(n - 62, 0)
    M = M >> over
    n = n - over
    return M.astype(np.int32), n.astype(np.int8)


def requant(acc: Tensor, mult: Tensor, shift: Tensor) -> Tensor:
    """(acc * M + 2^(n-1)) >> n in int64; mult/shift broadcast against acc (per row: last dim)."""
    n = shift.to(torch.int64)
    return (acc.to(torch.int64) * mult.to(torch.int64) + (torch.ones_like(n) << (n - 1))) >> n


def rshr(v: Tensor, n: int) -> Tensor:
    """Rounding right shift by a constant n >= 0 (round half up)."""
    if n < 0:
        raise ValueError(f"shift must be >= 0, got {n}")
    return v if n == 0 else (v + (1 << (n - 1))) >> n


def sat(v: Tensor, lo: int, hi: int) -> Tensor:
    return v.clamp(lo, hi)


# --- lookup tables ----------------------------------------------------------------------


def _table(fn, lo: int, hi: int) -> Tensor:
    vals = [min(hi, max(lo, round(32768.0 * fn(-16.0 + k / 32.0)))) for k in range(LUT_SIZE)]
    return torch.tensor(vals, dtype=torch.int16)


def sigmoid_table() -> Tensor:
    """(LUT_SIZE,) int16: round(32768 * sigmoid(-16 + k/32)) clamped to [0, 32767]."""
    return _table(lambda x: 1.0 / (1.0 + math.exp(-x)), 0, GATE_MAX)


def tanh_table() -> Tensor:
    """(LUT_SIZE,) int16: round(32768 * tanh(-16 + k/32)) clamped to [-32767, 32767]."""
    return _table(math.tanh, -GATE_MAX, GATE_MAX)


# the C kernel's mirror constants (rnnslim_core.h LUT_SIG_MIRROR / LUT_TANH_MIRROR): for k > 512,
# T[k] = min(GATE_MAX, mirror - T[1024 - k])
SIG_MIRROR, TANH_MIRROR = 32768, 0


def half_table(table: Tensor, mirror: int) -> Tensor:
    """(LUT_HALF,) the lower half of a (LUT_SIZE,) table, which is all an exported model stores (half the
    flash): its kernel rebuilds T[k], k > 512, as min(GATE_MAX, mirror - T[1024 - k]). Raises if that does
    not give `table` back exactly, so a changed table can never make the kernel drift from `lut`."""
    half = table[:LUT_HALF]
    upper = torch.clamp(mirror - half.flip(0).to(torch.int32), max=GATE_MAX)  # T[1024 - k] for k = 512 .. 1024
    if not torch.equal(upper.to(table.dtype), table[LUT_SIZE // 2:]):
        raise ValueError(f"the table is not mirror-symmetric about its middle entry with mirror {mirror}: the "
                         "kernel cannot store its lower half only")
    return half


def lut(table: Tensor, pre: Tensor) -> Tensor:
    """Interpolated table lookup of a Q.12 pre-activation -> Q0.15 (int64, same shape)."""
    u = sat(pre.to(torch.int64), LUT_LO, LUT_HI) - LUT_LO
    k = u >> LUT_SHIFT
    frac = u & ((1 << LUT_SHIFT) - 1)
    t = table.to(torch.int64)
    lo, hi = t[k], t[k + 1]
    return lo + (((hi - lo) * frac + (1 << (LUT_SHIFT - 1))) >> LUT_SHIFT)


# --- float <-> integer boundary ----------------------------------------------------------


def quantize_q8(x: Tensor, scale: Tensor | float) -> Tensor:
    """Float activations -> int8 codes (as int32) with a per-tensor scale: round-half-even,
    saturated to [-127, 127]. Used only where a float tensor enters an integer layer."""
    return torch.clamp(torch.round(x.float() / scale), -Q8_MAX, Q8_MAX).to(torch.int32)


def q12_from_real(x: Tensor) -> Tensor:
    """Real values -> Q.12 int64 (biases), saturated to +-PRE_SAT."""
    return torch.clamp(torch.round(x.double() * (1 << PRE_FRAC)), -PRE_SAT, PRE_SAT).to(torch.int64)
