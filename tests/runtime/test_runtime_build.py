"""runtime.build: the compiled-library cache is keyed, atomic and verified before loading."""

from __future__ import annotations

import pytest

from rnnslim.runtime.build import CompilerUnavailable, compile_shared, find_compiler, verified

try:
    find_compiler()
    HAVE_CC = True
except CompilerUnavailable:
    HAVE_CC = False


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler here")
def test_cache_hit_and_damaged_library_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "f.c"
    src.write_text("int f(void) { return 42; }\n")
    lib = compile_shared([src], ["-O2"], "t")
    assert verified(lib) and compile_shared([src], ["-O2"], "t") == lib
    stamp = lib.stat().st_mtime_ns
    lib.unlink()  # a damaged cache entry (a new file: never overwrite a library in place) is rebuilt
    lib.write_bytes(b"\x7fELF truncated")
    assert not verified(lib)
    again = compile_shared([src], ["-O2"], "t")
    assert again == lib and verified(lib) and lib.stat().st_mtime_ns != stamp
    assert compile_shared([src], ["-O3"], "t") != lib  # other flags, other key
    src.write_text("int f(void) { return 43; }\n")
    assert compile_shared([src], ["-O2"], "t") != lib  # other source, other key


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler here")
def test_compile_error_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "bad.c"
    src.write_text("int f(void) { return }\n")
    with pytest.raises(CompilerUnavailable, match="bad.c"):
        compile_shared([src], ["-O2"], "t")
    assert not any(p.suffix == ".so" for p in (tmp_path / "cache" / "kernels").iterdir())


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler here")
def test_a_cache_others_can_write_is_refused(tmp_path, monkeypatch):
    from rnnslim.runtime.build import UnsafeCache

    shared = tmp_path / "shared"
    (shared / "kernels").mkdir(parents=True)
    (shared / "kernels").chmod(0o777)  # anyone could plant a library there
    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(shared))
    src = tmp_path / "f.c"
    src.write_text("int f(void) { return 1; }\n")
    with pytest.raises(UnsafeCache, match="will not load from it"):
        compile_shared([src], ["-O2"], "t")


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler here")
def test_a_planted_library_with_a_matching_digest_is_not_loaded(tmp_path, monkeypatch):
    """Someone else's file at the predictable path (with a digest that matches it) is rebuilt."""
    import os

    monkeypatch.setenv("RNNSLIM_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "f.c"
    src.write_text("int f(void) { return 2; }\n")
    lib = compile_shared([src], ["-O2"], "t")
    planted = tmp_path / "evil.c"
    planted.write_text("int f(void) { return 666; }\n")
    evil = compile_shared([planted], ["-O2"], "e")
    lib.unlink()
    lib.write_bytes(evil.read_bytes())
    sig = lib.with_name(lib.name + ".sha256")
    sig.unlink()
    sig.write_text(__import__("hashlib").sha256(lib.read_bytes()).hexdigest())
    lib.chmod(0o666)  # writable by others: not trusted even though the digest matches
    assert not verified(lib)
    rebuilt = compile_shared([src], ["-O2"], "t")
    import ctypes

    assert ctypes.CDLL(str(rebuilt)).f() == 2
    if hasattr(os, "getuid") and os.getuid() == 0:  # owned by another user: not trusted either
        os.chown(rebuilt, 65534, 65534)
        assert not verified(rebuilt)
