"""Shared test marks for code that compiles C on the host."""

from __future__ import annotations

import pytest

from rnnslim.runtime.build import CompilerUnavailable, find_compiler


def have_cc() -> bool:
    try:
        find_compiler()
        return True
    except CompilerUnavailable:
        return False


needs_cc = pytest.mark.skipif(not have_cc(), reason="no C compiler here")
