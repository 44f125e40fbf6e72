"""The token table of a C export: text <-> token ids on the device, the way the model was trained.

A language model's C library takes token ids; the vocabulary that maps text to them lives in
the model's task meta (`task_meta["vocab"]`, checked by tasks/vocab.py). For a character
model (task charlm) or a word model (task wordlm) `rnnslim export --format c` also writes

    NAME_vocab.h   NAME_token_text / NAME_token_length (id -> UTF-8), NAME_token_id (one token's
                   text -> id), NAME_encode (UTF-8 text -> ids, the task's own tokenization)
    NAME_vocab.c   the table: every token as an escaped C string literal, its length, and the ids
                   sorted by their UTF-8 bytes (binary search); compile it only where a device
                   encodes or prints text (its flash is stated apart: vocab_table_bytes)
    vocab.json     the same mapping for any other language (VOCAB_FILE_FORMAT):
                   {"format": "rnnslim-vocab", "version": 1, "tokenizer": "chars" | "words",
                    "tokens": [text of id 0, text of id 1, ...], "eos": id | null, "unk": id | null,
                    "lf_for_cr": bool, "whitespace": [code points] (words), "encoding": "..."}

Tokenization (NAME_encode, and what vocab.json's "encoding" says in words):

    chars  every Unicode character (code point) is one token. Files are read with CRLF and CR
           turned into LF (tasks/corpus.py), so when the vocabulary has "\\n" but no "\\r" the
           encoder does the same ("lf_for_cr"); a character outside the vocabulary is an error
    words  each line (ended by LF, CRLF or CR, as Python's text files read them) is split on
           whitespace (Python's str.split(): every code point with str.isspace(), listed in
           "whitespace") and `<eos>` follows it, a last line without a line end included; a
           word outside the vocabulary becomes `<unk>` (an error when there is none)

The encoder checks UTF-8 strictly (no overlong forms, no surrogates, nothing above U+10FFFF).
Any other model (feature input, or a token model without a known vocabulary) gets none of
these files: its ids are the caller's business.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

from rnnslim.tasks.vocab import vocab_problem

VOCAB_FILE = "vocab.json"
VOCAB_FILE_FORMAT = "rnnslim-vocab"
TOKENIZERS = {"charlm": "chars", "wordlm": "words"}
EOS, UNK = "<eos>", "<unk>"  # tasks/wordlm.py's special words
MAX_TOKEN_BYTES = 4095  # the longest string literal every C99 compiler takes (-pedantic checks it)
POINTER_BYTES = 4  # the table's pointers, counted as on 32-bit microcontrollers (8 on 64-bit hosts)
_LINE_ENDS = (0x0A, 0x0D)


@dataclass(frozen=True)
class Vocabulary:
    """The tokens of a language model and how its task turns text into them."""

    tokens: list[str]
    tokenizer: str  # "chars" | "words"

    @property
    def eos(self) -> int | None:
        return self.tokens.index(EOS) if self.tokenizer == "words" and EOS in self.tokens else None

    @property
    def unk(self) -> int | None:
        return self.tokens.index(UNK) if self.tokenizer == "words" and UNK in self.tokens else None

    @property
    def lf_for_cr(self) -> bool:
        """chars: CRLF / CR are encoded as LF (the model never saw a CR)."""
        return self.tokenizer == "chars" and "\n" in self.tokens and "\r" not in self.tokens

    @property
    def encoded(self) -> list[bytes]:
        return [t.encode("utf-8", "surrogatepass") for t in self.tokens]

    def table_bytes(self) -> int:
        """Flash of NAME_vocab.c: the texts with their NULs, a pointer, a uint16 length and an int32
        sorted id per token (pointers at POINTER_BYTES)."""
        return sum(len(b) + 1 for b in self.encoded) + len(self.tokens) * (POINTER_BYTES + 2 + 4)


def whitespace_code_points() -> list[int]:
    """The code points Python's str.split() splits on, line ends excluded (they end a line)."""
    return [cp for cp in range(0x110000) if chr(cp).isspace() and cp not in _LINE_ENDS]


def model_vocabulary(model, vocab_size: int) -> Vocabulary | None:
    """The vocabulary of a char / word language model with `vocab_size` input ids, from its task
    meta; None for any other model. A vocabulary that cannot be the model's is a ValueError."""
    meta = getattr(model, "task_meta", None) or {}
    task, tokens = meta.get("task", "charlm"), meta.get("vocab")
    if task not in TOKENIZERS or tokens is None:
        return None
    problem = vocab_problem(task, tokens)
    if problem:
        raise ValueError(f"the model's vocabulary {problem}; fix task_meta['vocab'] or export token ids only "
                         "(remove the vocabulary)")
    if len(tokens) != vocab_size:
        raise ValueError(f"the model's vocabulary has {len(tokens)} entries but the model reads {vocab_size} "
                         "token ids; the task meta does not belong to this model")
    vocab = Vocabulary(list(tokens), TOKENIZERS[task])
    long = next((t for t, b in zip(vocab.tokens, vocab.encoded) if len(b) > MAX_TOKEN_BYTES), None)
    if long is not None:
        raise ValueError(f"the token {long[:20]!r}... is longer than {MAX_TOKEN_BYTES} UTF-8 bytes, the longest C "
                         "string a C99 compiler must take")
    return vocab


def vocab_json(vocab: Vocabulary) -> bytes:
    """vocab.json (see the module docstring)."""
    how = ("each Unicode character is one token" + ("; CRLF and CR are read as LF" if vocab.lf_for_cr else "")
           if vocab.tokenizer == "chars" else
           "each line (ended by LF, CRLF or CR) split on whitespace, then <eos>; unknown words -> <unk>")
    doc = {"format": VOCAB_FILE_FORMAT, "version": 1, "tokenizer": vocab.tokenizer, "encoding": how,
           "tokens": vocab.tokens, "eos": vocab.eos, "unk": vocab.unk, "lf_for_cr": vocab.lf_for_cr}
    if vocab.tokenizer == "words":
        doc["whitespace"] = whitespace_code_points()
    return (json.dumps(doc, ensure_ascii=True, indent=1) + "\n").encode()


def c_string(b: bytes) -> str:
    """A C string literal of exactly these bytes: printable ASCII as is, the rest (and \\ " ?,
    so no trigraph can form) as 3-digit octal escapes, which never absorb a following digit."""
    return '"' + "".join(chr(c) if 0x20 <= c < 0x7F and chr(c) not in '\\"?' else f"\\{c:03o}" for c in b) + '"'


def vocab_header(name: str, vocab: Vocabulary, source: str) -> str:
    N, V = name.upper(), len(vocab.tokens)
    words = vocab.tokenizer == "words"
    rule = (f"each line (ended by LF, CRLF or CR) split on whitespace (Python's str.split()), then {EOS}; a "
            f"word outside the vocabulary becomes {UNK}" if words else
            "one token per Unicode character" + (" (CRLF and CR are read as LF, as the model's training files "
                                                  "were)" if vocab.lf_for_cr else ""))
    about = textwrap.fill(f"The vocabulary of {name} ({V} {'words' if words else 'characters'}): token id <-> "
                          f"UTF-8 text, and text -> ids the way the model was trained: {rule}. vocab.json holds "
                          f"the same table for other languages. Flash of {name}_vocab.c: {vocab.table_bytes():,} "
                          f"bytes (pointers counted at {POINTER_BYTES} bytes); compile it beside {name}.c only where "
                          "text is encoded or printed on the device.", 100, initial_indent=" * ",
                          subsequent_indent=" * ")
    specials = (f"#define {N}_TOKEN_EOS {vocab.eos if vocab.eos is not None else -1}  /* <eos>: after each line */\n"
                f"#define {N}_TOKEN_UNK {vocab.unk if vocab.unk is not None else -1}  /* <unk>: any other word "
                "(-1: none) */\n" if words else "")
    bad = "a word outside the vocabulary when there is no <unk>" if words else "a character outside the vocabulary"
    return f"""/* {name}_vocab.h: generated by rnnslim from {source} (do not edit).
{about}
 *
 *   int32_t ids[64];
 *   int32_t n = {name}_encode(text, strlen(text), ids, 64);    n ids; n > 64: needs a bigger buffer
 *   for (i = 0; i < n && i < 64; i++) {name}_step(&s, ids[i], logits);
 *   fputs({name}_token_text(best), stdout);                    a predicted id back to text
 */
#ifndef {N}_VOCAB_H
#define {N}_VOCAB_H
#include <stddef.h>
#include <stdint.h>

#define {N}_TOKENS {V}  /* = {N}_VOCAB: ids 0 .. {V - 1} */
{specials}
/* Token id -> its text, NUL-terminated UTF-8; NULL for an id outside [0, {N}_TOKENS). */
const char *{name}_token_text(int32_t id);
/* The length of that text in bytes (a token may hold a NUL byte); 0 for an id outside. */
size_t {name}_token_length(int32_t id);
/* The id of the token whose text is exactly utf8[0 .. len), or -1 when there is none. */
int32_t {name}_token_id(const char *utf8, size_t len);
/* utf8[0 .. len) -> token ids. Writes at most max_ids ids and returns how many the text has
   (more than max_ids: the rest were not written; call again with a bigger buffer), or -1 - i
   when byte i starts what cannot be encoded: invalid UTF-8, {bad}.
   Texts of 2^31 - 2 bytes or more: INT32_MIN. */
int32_t {name}_encode(const char *utf8, size_t len, int32_t *ids, int32_t max_ids);

#endif
"""


_UTF8_DECODER = """/* The code point starting at s[i] (strict UTF-8), its byte count in *n; -1 when invalid. */
static int32_t utf8_at(const unsigned char *s, size_t len, size_t i, size_t *n) {
    uint32_t c = s[i], cp, min;
    size_t k, need;
    if (c < 0x80u) { *n = 1; return (int32_t)c; }
    if (c >= 0xC2u && c <= 0xDFu) { need = 1; cp = c & 0x1Fu; min = 0x80u; }
    else if (c >= 0xE0u && c <= 0xEFu) { need = 2; cp = c & 0x0Fu; min = 0x800u; }
    else if (c >= 0xF0u && c <= 0xF4u) { need = 3; cp = c & 0x07u; min = 0x10000u; }
    else return -1;
    if (len - i <= need) return -1;
    for (k = 1; k <= need; k++) {
        if ((s[i + k] & 0xC0u) != 0x80u) return -1;
        cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) return -1;
    *n = need + 1;
    return (int32_t)cp;
}
"""


def _encode_chars(name: str, vocab: Vocabulary) -> str:
    cr = """        if (vocab_lf >= 0 && s[i] == 0x0Du) {  /* CRLF / CR -> LF, as the training files were read */
            k = (i + 1 < len && s[i + 1] == 0x0Au) ? 2u : 1u;
            id = vocab_lf;
        } else {
            if (utf8_at(s, len, i, &k) < 0) return -1 - (int32_t)i;
            id = """ + name + """_token_id(utf8 + i, k);
        }
""" if vocab.lf_for_cr else """        if (utf8_at(s, len, i, &k) < 0) return -1 - (int32_t)i;
        id = """ + name + """_token_id(utf8 + i, k);
"""
    lf = f"static const int32_t vocab_lf = {vocab.tokens.index(chr(10))};\n\n" if vocab.lf_for_cr else ""
    return lf + f"""int32_t {name}_encode(const char *utf8, size_t len, int32_t *ids, int32_t max_ids) {{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t i = 0, k = 0;
    int32_t count = 0, id;
    if (len >= (size_t)INT32_MAX - 1) return INT32_MIN;
    while (i < len) {{
{cr}        if (id < 0) return -1 - (int32_t)i;
        if (count < max_ids) ids[count] = id;
        count++;
        i += k;
    }}
    return count;
}}
"""


def _encode_words(name: str, vocab: Vocabulary) -> str:
    spaces = whitespace_code_points()
    rows = ", ".join(f"0x{cp:04X}u" for cp in spaces)
    unk = vocab.unk if vocab.unk is not None else -1
    eos = vocab.eos if vocab.eos is not None else -1
    return f"""/* What Python's str.split() splits on (str.isspace()), line ends apart */
static const uint32_t vocab_space[{len(spaces)}] = {{ {rows} }};

static int vocab_is_space(int32_t cp) {{
    size_t j;
    for (j = 0; j < sizeof vocab_space / sizeof vocab_space[0]; j++)
        if ((uint32_t)cp == vocab_space[j]) return 1;
    return 0;
}}

static void vocab_emit(int32_t *ids, int32_t max_ids, int32_t *count, int32_t id) {{
    if (*count < max_ids) ids[*count] = id;
    (*count)++;
}}

int32_t {name}_encode(const char *utf8, size_t len, int32_t *ids, int32_t max_ids) {{
    const unsigned char *s = (const unsigned char *)utf8;
    size_t i = 0, k = 0, start;
    int32_t count = 0, cp, id;
    int open_line = 0;
    if (len >= (size_t)INT32_MAX - 1) return INT32_MIN;
    while (i < len) {{
        if (s[i] == 0x0Au || s[i] == 0x0Du) {{  /* a line end: LF, CRLF or CR */
            i += (s[i] == 0x0Du && i + 1 < len && s[i + 1] == 0x0Au) ? 2u : 1u;
            vocab_emit(ids, max_ids, &count, {eos});
            open_line = 0;
            continue;
        }}
        open_line = 1;
        cp = utf8_at(s, len, i, &k);
        if (cp < 0) return -1 - (int32_t)i;
        if (vocab_is_space(cp)) {{ i += k; continue; }}
        start = i;
        while (i < len && s[i] != 0x0Au && s[i] != 0x0Du) {{
            cp = utf8_at(s, len, i, &k);
            if (cp < 0) return -1 - (int32_t)i;
            if (vocab_is_space(cp)) break;
            i += k;
        }}
        id = {name}_token_id(utf8 + start, i - start);
        if (id < 0) id = {unk};
        if (id < 0) return -1 - (int32_t)start;
        vocab_emit(ids, max_ids, &count, id);
    }}
    if (open_line) vocab_emit(ids, max_ids, &count, {eos});
    return count;
}}
"""


def vocab_source(name: str, vocab: Vocabulary) -> str:
    """NAME_vocab.c: the table and the four functions NAME_vocab.h declares."""
    V = len(vocab.tokens)
    encoded = vocab.encoded
    order = sorted(range(V), key=lambda i: encoded[i])
    texts = ",\n".join(f"    {c_string(b)}" for b in encoded)
    lengths = ",".join(str(len(b)) for b in encoded)
    sorted_ids = ",".join(str(i) for i in order)
    encode = _encode_words(name, vocab) if vocab.tokenizer == "words" else _encode_chars(name, vocab)
    return f"""/* {name}_vocab.c: generated by rnnslim (do not edit). The vocabulary of {name} as const
   tables (flash); no RAM, no malloc. Token texts are escaped: printable ASCII as is, other bytes
   as 3-digit octal escapes of their UTF-8 encoding. */
#include <string.h>
#include "{name}_vocab.h"

/* id -> text (UTF-8) */
static const char *const vocab_text[{V}] = {{
{texts}
}};
/* id -> length of its text in bytes */
static const uint16_t vocab_length[{V}] = {{ {lengths} }};
/* ids in the order of their texts' bytes (memcmp, shorter first on a tie): binary search */
static const int32_t vocab_sorted[{V}] = {{ {sorted_ids} }};

const char *{name}_token_text(int32_t id) {{
    return (id >= 0 && id < {V}) ? vocab_text[id] : NULL;
}}

size_t {name}_token_length(int32_t id) {{
    return (id >= 0 && id < {V}) ? (size_t)vocab_length[id] : 0u;
}}

int32_t {name}_token_id(const char *utf8, size_t len) {{
    int32_t lo = 0, hi = {V} - 1;
    while (lo <= hi) {{
        int32_t mid = lo + (hi - lo) / 2, id = vocab_sorted[mid];
        size_t n = vocab_length[id], m = n < len ? n : len;
        int c = m ? memcmp(vocab_text[id], utf8, m) : 0;
        if (c == 0) c = (n < len) ? -1 : (n > len) ? 1 : 0;
        if (c == 0) return id;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }}
    return -1;
}}

{_UTF8_DECODER}
{encode}"""


def vocab_files(name: str, vocab: Vocabulary, source: str) -> dict[str, bytes]:
    """The three files a vocabulary adds to an export."""
    return {f"{name}_vocab.h": vocab_header(name, vocab, source).encode(),
            f"{name}_vocab.c": vocab_source(name, vocab).encode(), VOCAB_FILE: vocab_json(vocab)}


__all__ = ["MAX_TOKEN_BYTES", "TOKENIZERS", "VOCAB_FILE", "VOCAB_FILE_FORMAT", "Vocabulary", "c_string",
           "model_vocabulary", "vocab_files", "whitespace_code_points"]
