"""TokenTable: a language model export's vocabulary from Python, through the C library's own encoder.

    m = ExportedModel("lm_c")
    ids = m.tokens.encode("To be, or not")        # int32 (T,): NAME_encode, the device's tokenization
    text = m.tokens.decode([12, 5, 0])            # ids -> text (vocab.json's tokens joined)

The ids come from the compiled NAME_encode (export/c_vocab.py), so Python and the device can
never tokenize differently; the texts from vocab.json, checked against the manifest's sha256
and the library's vocabulary size before use.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterable

import numpy as np

from rnnslim.runtime.manifest import VOCAB_FILE, ExportError


class TokenTable:
    def __init__(self, lib: ctypes.CDLL, name: str, vocab_json: bytes, vocab: int) -> None:
        try:
            doc = json.loads(vocab_json.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ExportError(f"{VOCAB_FILE} is not valid JSON ({str(e)[:120]}): export the model again") from None
        tokens = doc.get("tokens") if isinstance(doc, dict) else None
        if not (isinstance(tokens, list) and len(tokens) == vocab and all(isinstance(t, str) for t in tokens)):
            raise ExportError(f"{VOCAB_FILE} does not hold the {vocab} token texts the library was built with: "
                              "export the model again")
        self.texts: list[str] = tokens
        self.tokenizer: str = str(doc.get("tokenizer"))
        self._encode = getattr(lib, f"{name}_encode", None)
        if self._encode is None:
            raise ExportError(f"the library has no {name}_encode: export the model again")
        self._encode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int32]
        self._encode.restype = ctypes.c_int32

    def __len__(self) -> int:
        return len(self.texts)

    def encode(self, text: str) -> np.ndarray:
        """`text` -> int32 (T,) token ids, exactly as the exported NAME_encode gives them on a device
        (ValueError naming the character that has no token)."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        data = text.encode("utf-8", "surrogatepass")
        if len(data) >= 2**31 - 2:
            raise ValueError(f"a text of {len(data)} bytes is longer than NAME_encode takes (2^31 - 3)")
        ids = np.empty(len(data) + 1, np.int32)  # never more ids than bytes + a closing <eos>
        n = int(self._encode(data, len(data), ids.ctypes.data, len(ids)))
        if n < 0:
            at = -1 - n
            where = len(data[:at].decode("utf-8", "replace"))
            raise ValueError(f"character {where} of the text ({text[where:where + 1]!r}) cannot be encoded: "
                             f"{'outside the vocabulary' if self.tokenizer == 'chars' else 'no token and no <unk>'}"
                             " (or not valid UTF-8)")
        return ids[:n].copy()

    def text(self, token: int) -> str:
        """The text of one token id."""
        if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
            raise TypeError(f"a token is an integer id, got {type(token).__name__}")
        if not 0 <= token < len(self.texts):
            raise IndexError(f"token {token} is outside the vocabulary [0, {len(self.texts)})")
        return self.texts[int(token)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text: the tokens' texts joined (words with a space, <eos> as a line end)."""
        parts = [self.text(i) for i in ids]
        if self.tokenizer != "words":
            return "".join(parts)
        lines, words = [], []
        for p in parts:
            if p == "<eos>":
                lines.append(" ".join(words) + "\n")
                words = []
            else:
                words.append(p)
        return "".join(lines) + " ".join(words)


__all__ = ["TokenTable"]
