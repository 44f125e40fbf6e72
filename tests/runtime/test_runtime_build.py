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
