"""The verified sources of a C export, and the library the runtime compiles from them.

Loading a library runs its code, so rnnslim.runtime loads only a library it compiled itself:
each source the manifest lists is read once (a plain file, no symlink, bounded size), its
sha256 compared with the manifest, and those very bytes are written into a private
folder (0700, inside the kernel cache) and compiled there into the cache, keyed by the
sources, the flags and the compiler (build.compile_shared). Nothing is compiled from the
export directory itself (a file swapped after the check is never seen) and no library found
in it (lib<NAME>.so, with or without a .sha256, through a symlink or not) is ever loaded.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rnnslim.runtime.build import CompilerUnavailable, UnsafeCache, cache_dir, compile_shared, find_compiler, private_dir
from rnnslim.runtime.manifest import CORE_HEADER, ExportError, read_manifest, read_regular_file

MAX_SOURCE_BYTES = 1 << 30  # NAME.c holds the weights as text: ~4 bytes per int8 weight


def verified_sources(directory: str | Path, meta: dict) -> dict[str, bytes]:
    """file name -> bytes, for every file the (validated) manifest lists, each matching its sha256."""
    directory = Path(directory)
    out = {}
    for name, digest in meta["files"].items():
        data = read_regular_file(directory / name, MAX_SOURCE_BYTES)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ExportError(f"{directory / name} does not match the manifest (edited or damaged); export the "
                              "model again")
        out[name] = data
    return out


def verify_export(directory: str | Path) -> dict:
    """The manifest, after validating it and checking every listed file's sha256."""
    meta = read_manifest(directory)
    verified_sources(directory, meta)
    return meta


def _first_error(message: str, tmp: str, directory: Path) -> str:
    """The compiler's first error line, naming the export's file instead of the private copy."""
    lines = [ln for ln in message.splitlines() if ln.strip()]
    line = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "no message")
    return line.replace(tmp, str(directory)).strip()[:400]


def compile_verified(meta: dict, sources: dict[str, bytes], flags: Sequence[str], directory: Path) -> Path:
    """The cached library compiled from `sources` (already verified against `meta`), built
    from a private copy. A compilation failure is the export's fault: ExportError (one line:
    the first error); no compiler at all, or an unsafe cache folder, stays CompilerUnavailable
    / UnsafeCache."""
    find_compiler()
    name = meta["name"]
    with tempfile.TemporaryDirectory(prefix="export-src-", dir=private_dir(cache_dir())) as tmp:
        for file, data in sources.items():
            (Path(tmp) / file).write_bytes(data)
        src = Path(tmp)
        try:
            vocab = [f"{name}_vocab.c"] if f"{name}_vocab.c" in sources else []  # a language model's token table
            return compile_shared([src / f for f in (f"{name}.c", *vocab)], flags, f"rnnslim_export_{name}",
                                  depends=[src / f"{name}.h", src / CORE_HEADER,
                                           *(src / f"{name}_vocab.h" for _ in vocab)])
        except UnsafeCache:
            raise
        except CompilerUnavailable as e:
            raise ExportError(f"the export in {directory} does not compile: {_first_error(str(e), tmp, directory)}") from None
