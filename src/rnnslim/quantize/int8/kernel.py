"""Build and load kernel.c: the fused C step of an integer int8 model (rnnslim_core.h).

The shared library is compiled on first use with the system C compiler ($CC, else cc,
gcc or clang) and cached under $RNNSLIM_CACHE_DIR or ~/.cache/rnnslim/kernels, keyed by
the source, the flags, the compiler and (for -march=native builds) this CPU's features,
so a cache shared between machines never loads code built for another CPU. Two variants:

    native    -O3 -march=native: AVX512-VNNI, AVX2 or NEON int8 dot products where available
    avx2      -O3 -mavx2: the AVX2 dot products (x86 with AVX2 only; tests use it)
    portable  -O2 -DRS_PORTABLE: plain C99 loops (what a microcontroller runs)

All compute exactly the integers of integer_cells.py; the tests check it bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from enum import Enum
from functools import lru_cache
from pathlib import Path

SOURCE = Path(__file__).with_name("kernel.c")
CORE = Path(__file__).with_name("rnnslim_core.h")  # the step itself, shared with exported C models


class KernelUnavailable(RuntimeError):
    """The C kernel cannot be built here (no compiler, or compilation failed)."""


class KernelVariant(str, Enum):
    NATIVE = "native"
    AVX2 = "avx2"
    PORTABLE = "portable"


_FLAGS = {
    KernelVariant.NATIVE: ["-O3", "-march=native"],
    KernelVariant.AVX2: ["-O3", "-mavx2"],
    KernelVariant.PORTABLE: ["-O2", "-DRS_PORTABLE"],
}
_COMMON = ["-std=c99", "-ffp-contract=off", "-shared", "-fPIC"]


def cache_dir() -> Path:
    root = os.environ.get("RNNSLIM_CACHE_DIR")
    if root:
        return Path(root) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rnnslim" / "kernels"


def find_compiler() -> str:
    cc = os.environ.get("CC")
    candidates = [cc] if cc else ["cc", "gcc", "clang"]
    for name in candidates:
        path = shutil.which(name) if name else None
        if path:
            return path
    raise KernelUnavailable("no C compiler found (tried " + ", ".join(c for c in candidates if c) + "); install gcc "
                            "or clang or set CC to build rnnslim's int8 kernel. The integer model still runs "
                            "through SequenceModel.forward (the pure torch reference), only slower.")


def _cpu_fingerprint() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def build_kernel(variant: KernelVariant | str = KernelVariant.NATIVE) -> Path:
    """Path of the compiled shared library, compiling it if the cache has none."""
    variant = KernelVariant(variant)
    if variant is KernelVariant.AVX2 and " avx2" not in _cpu_fingerprint():
        raise KernelUnavailable("the avx2 kernel variant needs an x86 CPU with AVX2; use 'native' or 'portable'")
    cc = find_compiler()
    flags = _FLAGS[variant] + _COMMON
    for f in (SOURCE, CORE):
        if not f.is_file():
            raise KernelUnavailable(f"{f} is missing from this installation (package data not installed?)")
    src = SOURCE.read_bytes() + b"\0" + CORE.read_bytes()
    key = hashlib.sha256(b"\0".join([src, " ".join(flags).encode(), _compiler_id(cc).encode(),
                                     (_cpu_fingerprint() if variant is not KernelVariant.PORTABLE else "").encode()]))
    out = cache_dir() / f"rnnslim_int8_{variant.value}_{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *flags, "-o", tmp, str(SOURCE)], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise KernelUnavailable(f"compiling {SOURCE.name} with {cc} failed:\n{proc.stderr.strip()[-2000:]}")
        os.replace(tmp, out)  # atomic: concurrent builders never see a half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


_P = ctypes.c_void_p


@lru_cache(maxsize=None)
def load_kernel(variant: KernelVariant | str = KernelVariant.NATIVE) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_kernel(variant)))
    i32, i64 = ctypes.c_int, ctypes.c_int64
    sigs = {
        "rs_new": ([i32, i32, i32, i32, i32], _P),
        "rs_free": ([_P], None),
        "rs_simd_level": ([], i32),
        "rs_set_embedding": ([_P, _P], i32),
        "rs_set_matrix": ([_P, i32, i32, i32, _P, _P, _P, _P, i32], i32),
        "rs_set_layer": ([_P, i32, i32, i32, _P, _P, _P, _P, _P, ctypes.c_int32, i32, i32, _P, _P, _P], i32),
        "rs_set_decoder": ([_P, _P, _P], i32),
        "rs_finalize": ([_P], i32),
        "rs_state_len": ([_P], i32),
        "rs_step": ([_P, i64, _P, _P], i32),
        "rs_run": ([_P, _P, i32, _P, _P], i32),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib
