"""The C name of an exported model: one ASCII C identifier, used by every C-producing format.

A model's name (any str: a file stem, `task_meta["name"]`, a user's --name) becomes the
prefix of every public symbol (NAME_init, NAME_step, NAME_state, NAME_OUTPUTS ...) and the
stem of the files NAME.c / NAME.h (and the runtime's libNAME.so), so it must be

- ASCII [a-z0-9_], not starting with a digit: compilers refuse or warn about other
  identifiers (gcc: "İstanbul" is not in NFC), and file systems about other names
- short: a 5,000-character name gave `OSError: File name too long`; MAX_LENGTH keeps
  "libNAME.so" and every NAME_xxx symbol far below any file system's or linker's limit
- clear of what it sits next to: C keywords, the C library's headers (the generated files
  are compiled with `-I export_dir`, so a model called "string" would shadow <string.h>),
  the cores' own namespaces (rs_ / rsf_: a model called "rs_core" would redefine
  rs_core_run) and the check harness's file (check_main.c)

The default name (no --name) is the model's own, from where it was loaded (model_c_name):
the model directory ("runs/lm-small/model/model.json" and "runs/lm-small" give lm_small, a
compress run's stage "runs/lm-small/stages/02-finetune/model" gives lm_small_02_finetune, a
reference "charlstm-512x2.json" charlstm_512x2), else its task meta's name, else "model".

c_identifier is deterministic: NFKD, accents dropped ("İstanbul" -> "istanbul"), anything
else non-alphanumeric -> "_", lower case, a leading digit prefixed ("2net" -> "m_2net"), a
name in the cores' namespaces prefixed too ("rs_core" -> "m_rs_core"), a keyword or
header name suffixed ("int" -> "int_model"), an empty result -> "model", and a name
longer than MAX_LENGTH cut with a hash of the whole original name (two long names that
share their beginning still get two C names).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

MAX_LENGTH = 48
_HASH_CHARS = 8  # hex digits of sha256 kept when a name is cut

_C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline int long
    register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
    alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    asm fortran
""".split())
# <NAME.h> of the C library (C89 .. C23), POSIX headers a port is likely to include, compiler
# intrinsics headers the core includes
_C_HEADERS = frozenset("""
    assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign stdarg
    stdatomic stdbit stdbool stdckdint stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar
    wchar wctype unistd fcntl pthread
    immintrin arm_neon arm_acle
""".split())
_OWN_FILES = frozenset({"rnnslim_core", "rnnslim_float_core", "check_main"})
_OWN_PREFIXES = ("rs", "rsf")  # the cores' static functions, types, macros (rs_core_run, RS_SIMD, rsf_model)


def _in_own_namespace(ident: str) -> bool:
    return any(ident == p or ident.startswith(p + "_") for p in _OWN_PREFIXES)


def c_identifier(name: str) -> str:
    """An ASCII C identifier of at most MAX_LENGTH characters from a model name
    ("charlstm-512x2" -> "charlstm_512x2"; see the module docstring for every rule)."""
    if not isinstance(name, str):
        raise TypeError(f"a model name is a str, not {type(name).__name__}")
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ident = re.sub(r"[^0-9A-Za-z_]", "_", ascii_.strip()).strip("_").lower() or "model"
    if ident[0].isdigit() or _in_own_namespace(ident):  # a prefix: cutting a long name keeps it
        ident = "m_" + ident
    if ident in _C_KEYWORDS or ident in _C_HEADERS or ident in _OWN_FILES:
        ident += "_model"
    if len(ident) > MAX_LENGTH:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
        ident = ident[: MAX_LENGTH - _HASH_CHARS - 1].rstrip("_") + "_" + digest
    return ident


_DIRECTORY_MANIFEST = "model.json"  # a model directory's manifest (io/format.py MANIFEST)
_RUN_MODEL = "model"  # a train / compress run keeps its model in RUN/model/
_RUN_STAGES = "stages"  # a compress run's stage models: RUN/stages/NN-KIND/model/


def _name_from_path(path: Path) -> str:
    """The model's name from the file it was loaded from (see the module docstring)."""
    if path.name != _DIRECTORY_MANIFEST:
        return path.stem  # a reference model: NAME.json
    directory = path.parent
    if directory.name == _RUN_MODEL and directory.parent.name:
        directory = directory.parent
    if directory.parent.name == _RUN_STAGES and directory.parent.parent.name:
        return f"{directory.parent.parent.name}_{directory.name}"
    return directory.name


def model_c_name(model, given: str | None = None) -> str:
    """The C name of an export of `model`: `given` (--name) when there is one, else the model's
    own name (where it was loaded from, its task meta's name), made a C identifier."""
    if given:
        return c_identifier(given)
    source = getattr(model, "source_path", None)
    meta = getattr(model, "task_meta", None) or {}
    name = (_name_from_path(Path(source)) if source else None) or getattr(getattr(model, "spec", None), "name", None)
    return c_identifier(name or str(meta.get("name") or "") or "model")


__all__ = ["MAX_LENGTH", "c_identifier", "model_c_name"]
