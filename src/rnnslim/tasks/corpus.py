"""Reading a character corpus with bounded memory.

The text is read in CHUNK_BYTES pieces, twice: a first pass counts the characters and finds
which ones occur, a second writes their ids straight into one preallocated (N,) int64 tensor.
What stays in memory is that tensor (8 bytes per character: the ids the model trains and is
evaluated on) plus one piece; the file's bytes and the decoded text are never held whole.

A file larger than max_corpus_bytes() (MAX_CORPUS_BYTES, 512 MiB: 4 GiB of ids for an ASCII
text; the environment variable RNNSLIM_MAX_CORPUS_BYTES sets another limit) is refused from
its size, before anything is read, unless the caller reads only its first `max_chars`.

Line endings: CRLF and lone CR become "\\n" (what Python's text mode does), also when a CRLF
pair straddles two pieces.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAX_CORPUS_BYTES = 512 << 20
LIMIT_ENV = "RNNSLIM_MAX_CORPUS_BYTES"
CHUNK_BYTES = 16 << 20
_CODE_POINTS = 0x110000


def max_corpus_bytes() -> int:
    """The largest corpus file read whole: RNNSLIM_MAX_CORPUS_BYTES when set, else MAX_CORPUS_BYTES."""
    value = os.environ.get(LIMIT_ENV)
    if value is None or not value.strip():
        return MAX_CORPUS_BYTES
    try:
        limit = int(value.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{LIMIT_ENV}={value!r} is not a whole number of bytes") from None
    if limit < 1:
        raise ValueError(f"{LIMIT_ENV}={value!r} must be a positive number of bytes")
    return limit


def check_corpus_size(path: Path, hint: str = "read its start with max_chars, or ") -> None:
    """Refuse, from its size alone, a file too large to hold as ids (`hint`: what else to do)."""
    size, limit = path.stat().st_size, max_corpus_bytes()
    if size > limit:
        raise ValueError(f"{path}: the text file is {size:,} bytes, more than the {limit:,} rnnslim reads whole "
                         f"(its ids take 8 bytes per token in memory); {hint}set {LIMIT_ENV} to allow more")


class Newlines:
    """CRLF / CR -> LF over a stream of pieces; remembers whether it changed anything."""

    def __init__(self) -> None:
        self.carry_cr = False
        self.changed = False

    def __call__(self, piece: str, final: bool = False) -> str:
        if self.carry_cr:
            piece = "\r" + piece
        self.carry_cr = piece.endswith("\r") and not final  # its "\n" may start the next piece
        if self.carry_cr:
            piece = piece[:-1]
        if "\r" in piece:
            self.changed = True
            piece = piece.replace("\r\n", "\n").replace("\r", "\n")
        return piece


def _cut(pieces: Iterator[str], max_chars: int | None) -> Iterator[str]:
    left = max_chars
    for piece in pieces:
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        if piece:
            yield piece
        if left == 0:
            return


def file_pieces(path: Path, newlines: Newlines, max_chars: int | None = None) -> Iterator[str]:
    """The file's text (UTF-8, newlines translated) in pieces, at most max_chars characters."""

    def decoded() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                yield newlines(decoder.decode(block))
        yield newlines(decoder.decode(b"", final=True), final=True)

    return _cut(decoded(), max_chars)


def text_pieces(text: str, max_chars: int | None = None) -> Iterator[str]:
    """An in-memory text in pieces of CHUNK_BYTES characters (no newline translation)."""
    return _cut((text[i: i + CHUNK_BYTES] for i in range(0, len(text), CHUNK_BYTES)), max_chars)


def _codes(piece: str) -> np.ndarray:
    """The code points of `piece` as a (len,) uint32 array (no Python object per character)."""
    return np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class CorpusScan:
    chars: int  # characters in the text
    symbols: list[str]  # distinct characters, sorted by code point (= sorted(set(text)))


def scan(pieces: Iterator[str]) -> CorpusScan:
    """First pass: how many characters, and which."""
    seen = np.zeros(_CODE_POINTS, dtype=bool)
    n = 0
    for piece in pieces:
        seen[_codes(piece)] = True
        n += len(piece)
    return CorpusScan(n, [chr(c) for c in np.flatnonzero(seen)])


def encode(pieces: Iterator[str], index: dict[str, int], n: int) -> torch.Tensor:
    """Second pass: the (n,) int64 ids of the text under `index` (every character in it)."""
    lut = np.zeros(_CODE_POINTS, dtype=np.int64)
    for c, i in index.items():
        lut[ord(c)] = i
    ids = torch.empty(n, dtype=torch.long)
    at = 0
    for piece in pieces:
        ids[at: at + len(piece)] = torch.from_numpy(lut[_codes(piece)])
        at += len(piece)
    if at != n:
        raise RuntimeError(f"the corpus changed while it was read ({n} characters, then {at})")
    return ids

