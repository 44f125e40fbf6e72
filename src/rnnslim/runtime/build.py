"""Compile C sources into a cached shared library, torch-free (used by the host int8 kernel and
by rnnslim.runtime for exported models).

Libraries are cached under $RNNSLIM_CACHE_DIR/kernels or ~/.cache/rnnslim/kernels, keyed by
the sources, the flags, the compiler and (for -march=native builds) this CPU's features, so
a cache shared between machines never loads code built for another CPU. Each library has a
`.sha256` beside it written after an atomic build; a library whose bytes no longer match
(a truncated copy, a disk error) is rebuilt, never loaded.

Loading a library runs its code, so the cache must be private: the kernels folder is
created 0700 and used only while it is owned by this user and writable by no one else,
and a library (or its digest) owned by another user or writable by others is never
loaded (rebuilt in its place). A folder that fails the check is refused with the reason:
point RNNSLIM_CACHE_DIR at a private folder.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class CompilerUnavailable(RuntimeError):
    """No C compiler here, or the compilation failed."""


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
    raise CompilerUnavailable("no C compiler found (tried " + ", ".join(c for c in candidates if c) + "); install "
                              "gcc or clang or set CC to build rnnslim's int8 kernel. The integer model still runs "
                              "through SequenceModel.forward (the pure torch reference), only slower.")


def cpu_fingerprint() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


class UnsafeCache(CompilerUnavailable):
    """The cache folder or a cached library could have been written by someone else."""


def _private(st: os.stat_result) -> bool:
    uid = os.getuid() if hasattr(os, "getuid") else None
    return (uid is None or st.st_uid == uid) and not (st.st_mode & 0o022)


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing; refused (UnsafeCache) unless owned by this user and
    writable by no one else."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if not _private(st):
        raise UnsafeCache(f"the kernel cache {path} is owned by uid {st.st_uid} with mode {oct(st.st_mode & 0o777)}: "
                          "a library there could be someone else's code, so rnnslim will not load from it. Use a "
                          "folder only you can write (chmod 700, or set RNNSLIM_CACHE_DIR)")
    return path


def _trusted_file(path: Path) -> bool:
    try:
        return _private(path.stat())
    except OSError:
        return False


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verified(lib: Path) -> bool:
    """True if `lib` and its recorded digest are this user's files, writable by no one else,
    and the library's bytes match the digest."""
    sig = lib.with_name(lib.name + ".sha256")
    try:
        return (lib.is_file() and _trusted_file(lib) and _trusted_file(sig)
                and sig.read_text().strip() == _digest(lib))
    except OSError:
        return False


def compile_shared(sources: Sequence[Path], flags: Sequence[str], stem: str, depends: Sequence[Path] = (),
                   out_dir: Path | None = None) -> Path:
    """Path of the shared library built from `sources` (+ headers in `depends`) with `flags`.

    Built once per key into `out_dir` (default: the cache), atomically: concurrent builders
    never see a half-written library.
    """
    cc = find_compiler()
    flags = list(flags) + ["-std=c99", "-ffp-contract=off", "-shared", "-fPIC"]
    files = list(sources) + list(depends)
    for f in files:
        if not Path(f).is_file():
            raise CompilerUnavailable(f"{f} is missing (package data not installed?)")
    native = any(f.startswith("-march=native") or f.startswith("-mcpu=native") for f in flags)
    key = hashlib.sha256(b"\0".join([*(Path(f).read_bytes() for f in files), " ".join(flags).encode(),
                                     compiler_id(cc).encode(), (cpu_fingerprint() if native else "").encode()]))
    out_dir = private_dir(out_dir or cache_dir())
    out = out_dir / f"{stem}_{key.hexdigest()[:16]}.so"
    if verified(out):
        return out
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *flags, "-o", tmp, *map(str, sources)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise CompilerUnavailable(f"compiling {', '.join(Path(s).name for s in sources)} with {cc} failed:\n"
                                      f"{proc.stderr.strip()[-2000:]}")
        sig_tmp = tmp + ".sha256"
        Path(sig_tmp).write_text(_digest(Path(tmp)))
        os.replace(tmp, out)
        os.replace(sig_tmp, out.with_name(out.name + ".sha256"))
    finally:
        for t in (tmp, tmp + ".sha256"):
            if os.path.exists(t):
                os.unlink(t)
    return out
