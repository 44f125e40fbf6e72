"""Build and load kernel.c: the fused C step of an integer int8 model (rnnslim_core.h).

The shared library is compiled on first use with the system C compiler ($CC, else cc,
gcc or clang) and cached (rnnslim.runtime.build: keyed by sources, flags, compiler and,
for -march=native builds, this CPU; verified against its recorded digest before every
load). Three variants:

    native    -O3 -march=native: AVX512-VNNI, AVX2 or NEON int8 dot products where available
    avx2      -O3 -mavx2: the AVX2 dot products (x86 with AVX2 only; tests use it)
    portable  -O2 -DRS_PORTABLE: plain C99 loops (what a microcontroller runs)

All compute exactly the integers of integer_cells.py; the tests check it bit for bit.
"""

from __future__ import annotations

import ctypes
from enum import Enum
from functools import lru_cache
from pathlib import Path

from rnnslim.runtime.build import CompilerUnavailable, compile_shared, cpu_fingerprint

SOURCE = Path(__file__).with_name("kernel.c")
CORE = Path(__file__).with_name("rnnslim_core.h")  # the step itself, shared with exported C models
PANELS = Path(__file__).with_name("rnnslim_panels.h")  # the panels product, included by CORE (exported with it)
KernelUnavailable = CompilerUnavailable  # the name this module has always raised


class KernelVariant(str, Enum):
    NATIVE = "native"
    AVX2 = "avx2"
    PORTABLE = "portable"


_FLAGS = {
    KernelVariant.NATIVE: ["-O3", "-march=native"],
    KernelVariant.AVX2: ["-O3", "-mavx2"],
    KernelVariant.PORTABLE: ["-O2", "-DRS_PORTABLE"],
}


def build_kernel(variant: KernelVariant | str = KernelVariant.NATIVE) -> Path:
    """Path of the compiled shared library, compiling it if the cache has none."""
    variant = KernelVariant(variant)
    if variant is KernelVariant.AVX2 and " avx2" not in cpu_fingerprint():
        raise KernelUnavailable("the avx2 kernel variant needs an x86 CPU with AVX2; use 'native' or 'portable'")
    return compile_shared([SOURCE], _FLAGS[variant], f"rnnslim_int8_{variant.value}", depends=[CORE, PANELS])


_P = ctypes.c_void_p


@lru_cache(maxsize=None)
def load_kernel(variant: KernelVariant | str = KernelVariant.NATIVE) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_kernel(variant)))
    i32, i64 = ctypes.c_int, ctypes.c_int64
    sigs = {
        "rs_new": ([i32, i32, i32, i32, i32], _P),
        "rs_free": ([_P], None),
        "rs_simd_level": ([], i32),
        "rs_panels_fast": ([], i32),
        "rs_set_embedding": ([_P, _P], i32),
        "rs_set_embedding_tied": ([_P], i32),
        "rs_set_matrix": ([_P, i32, i32, i32, _P, _P, _P, _P, i32], i32),
        "rs_set_matrix_nm24": ([_P, i32, i32, i32, _P, _P, _P], i32),
        "rs_set_matrix_strips": ([_P, i32, i32, i32, _P, _P, _P, _P, i32], i32),
        "rs_set_matrix_panels": ([_P, i32, i32, i32, _P, _P, _P, _P, i32], i32),
        "rs_set_layer": ([_P, i32, i32, i32, _P, _P, _P, _P, _P, ctypes.c_int32, i32, i32, _P, _P, _P], i32),
        "rs_set_decoder": ([_P, _P, _P], i32),
        "rs_set_input": ([_P, i32, i32, ctypes.c_float, _P, _P, _P], i32),
        "rs_set_window": ([_P, i32, i32, _P], i32),
        "rs_step_features": ([_P, _P, _P, _P], i32),
        "rs_run_features": ([_P, _P, i32, _P, _P], i32),
        "rs_finalize": ([_P], i32),
        "rs_state_len": ([_P], i32),
        "rs_step": ([_P, i64, _P, _P], i32),
        "rs_run": ([_P, _P, i32, _P, _P], i32),
        "rs_set_reverse": ([_P, i32, _P, _P, _P, _P, _P, _P], i32),
        "rs_workspace_bytes": ([_P, i32], ctypes.c_size_t),
        "rs_run_sequence": ([_P, _P, _P, i32, _P, i32, _P], i32),
        "rs_set_delta": ([_P, i32, ctypes.c_int32, _P, _P], i32),
        "rs_delta_bytes": ([_P], ctypes.c_size_t),
        "rs_step_delta": ([_P, i64, _P, _P, _P], i32),
        "rs_run_delta": ([_P, _P, i32, _P, _P, _P], i32),
        "rs_run_features_delta": ([_P, _P, i32, _P, _P, _P], i32),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib
