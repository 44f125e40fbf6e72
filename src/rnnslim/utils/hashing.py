"""SHA-256 of a file, read in 1 MiB pieces (bounded memory for corpora, data sets and weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path

PIECE_BYTES = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(PIECE_BYTES), b""):
            h.update(block)
    return h.hexdigest()
