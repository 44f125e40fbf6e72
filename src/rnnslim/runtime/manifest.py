"""model.json of a C export (`rnnslim export --format c`), read as untrusted input.

The manifest is read without following a symlink, bounded in size, parsed as strict JSON
(no duplicate keys, no NaN) and validated against a closed schema: every integer is a real
JSON integer (not 1e12, not true, not "5") within a bound, the name is a plain ASCII C
identifier, and `files` lists exactly the three sources (NAME.c, NAME.h, rnnslim_core.h)
with their sha256, plus a language model's vocabulary files (NAME_vocab.c, NAME_vocab.h,
vocab.json) when `tokenizer` says it has them. Anything else raises ExportError naming the file and the field.

Sizes a caller's buffers depend on are NOT taken from here: the runtime asks the compiled
library (NAME_info) and refuses a manifest that disagrees (exported.py).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

MANIFEST = "model.json"
FORMAT = "rnnslim-c-int8"
FORMAT_VERSION = 2  # 2: the library exports NAME_info (sizes from the code, not from this JSON)
CORE_HEADER = "rnnslim_core.h"
MAX_MANIFEST_BYTES = 1 << 20
# what NAME_info(int64_t *info, int n) writes, in this order (c_source.py generates it)
INFO_FIELDS = ("info_version", "vocab", "features", "outputs", "state_len", "state_bytes", "bidirectional",
               "readout_last", "workspace_fixed_bytes", "workspace_bytes_per_step", "cell", "layers")
CELL_IDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2}  # rs_model.cell (quantize/int8/packed.py CELL_ID)

# C identifier, ASCII only; 128 characters keep "NAME.c" and every derived symbol short
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_SIZE_LIMIT = 1 << 24  # widths, vocabulary, outputs, state words: far above any model rnnslim makes
_BYTES_LIMIT = 1 << 40

Width = Annotated[int, Field(ge=1, le=_SIZE_LIMIT)]
Count = Annotated[int, Field(ge=0, le=_SIZE_LIMIT)]
ByteCount = Annotated[int, Field(ge=0, le=_BYTES_LIMIT)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,134}\.(c|h|json)$")]
VOCAB_FILE = "vocab.json"  # the vocabulary for other languages (export/c_vocab.py)
Threshold = Annotated[int, Field(ge=0, le=1 << 16)]
Statistic = Annotated[float, Field(allow_inf_nan=False)]


class FeatureScaling(BaseModel):
    """Standardisation the caller applies (mean / std per feature or output; std > 0)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    mean: Annotated[list[Statistic], Field(max_length=_SIZE_LIMIT)]
    std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(max_length=_SIZE_LIMIT)]


class ExportError(ValueError):
    """The directory is not a complete, unmodified rnnslim C export."""


class ExportManifest(BaseModel):
    """The manifest fields export_c writes (c_source.CExport.to_dict)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal["rnnslim-c-int8"]
    format_version: int
    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    cell: Literal["lstm", "gru", "rnn_tanh"]
    layers: Annotated[list[Width], Field(min_length=1, max_length=256)]
    vocab: Count
    outputs: Width
    state_len: Count  # 0 for a bidirectional export (no streaming state)
    const_bytes: ByteCount
    scratch_bytes: ByteCount
    state_bytes: ByteCount
    ram_bytes: ByteCount
    tile_sparse: Annotated[list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=1024)]
    folded_embedding: bool
    files: dict[FileName, Sha256]
    input_kind: Literal["embedding", "identity", "linear"]
    features: Count
    bidirectional: bool
    input_window: Width = 1  # > 1 or input_padding > 0: a windowed input (Conv1d front end), NAME_run only
    input_padding: Count = 0
    readout: Literal["all", "last"]
    workspace_fixed_bytes: ByteCount
    workspace_bytes_per_step: ByteCount
    delta_thresholds: Annotated[list[Threshold | None], Field(max_length=256)] | None
    tokenizer: Literal["chars", "words"] | None = None  # NAME_vocab.{c,h} + vocab.json are in the export
    vocab_table_bytes: ByteCount = 0
    input_scaling: FeatureScaling | None = None
    output_scaling: FeatureScaling | None = None
    # matrix -> its sparse format (the names of tile_sparse); absent in exports from before the strips format
    sparse_formats: Annotated[dict[Annotated[str, StringConstraints(max_length=200)], Literal["tiles", "nm24", "strips", "panels"]],
                              Field(max_length=1024)] = {}
    # flash an AVX-512 VNNI build adds (its row corrections); absent (0) in exports from before they were guarded
    vnni_bytes: ByteCount = 0

    @model_validator(mode="after")
    def _consistent(self) -> ExportManifest:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version {self.format_version}: this rnnslim reads version {FORMAT_VERSION} "
                             "exports only; export the model again")
        expected = {f"{self.name}.c", f"{self.name}.h", CORE_HEADER}
        if self.tokenizer is not None:
            expected |= {f"{self.name}_vocab.c", f"{self.name}_vocab.h", VOCAB_FILE}
        if set(self.files) != expected:
            raise ValueError(f"files must list the sha256 of exactly {sorted(expected)}, got {sorted(self.files)}")
        if (self.input_kind == "embedding") != (self.features == 0):
            raise ValueError(f"input_kind {self.input_kind!r} with features {self.features}")
        if self.ram_bytes != self.scratch_bytes + self.state_bytes:
            raise ValueError(f"ram_bytes {self.ram_bytes} is not scratch_bytes + state_bytes "
                             f"({self.scratch_bytes} + {self.state_bytes})")
        for which, scaling, n in (("input", self.input_scaling, self.features), ("output", self.output_scaling,
                                                                                  self.outputs)):
            if scaling is not None and not (len(scaling.mean) == len(scaling.std) == n):
                raise ValueError(f"{which}_scaling has {len(scaling.mean)} means and {len(scaling.std)} deviations "
                                 f"for {n} {which}s")
        if len(self.layers) != len(self.delta_thresholds or self.layers):
            raise ValueError(f"{len(self.delta_thresholds or [])} delta thresholds for {len(self.layers)} layers")
        return self


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of `path`: a regular file reached without a symlink, at most `limit` bytes
    (ExportError otherwise, naming the file)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ExportError(f"{path} is missing from the export") from None
    except OSError as e:  # ELOOP: a symlink; EACCES, ENAMETOOLONG, ...
        raise ExportError(f"{path} cannot be read as a plain file of the export ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a directory, FIFO, device or socket
            raise ExportError(f"{path} is not a regular file")
        if st.st_size > limit:
            raise ExportError(f"{path} is {st.st_size} bytes, more than the {limit} an export file may have")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ExportError(f"{path} grew past {limit} bytes while being read")
    return data


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _one_line(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "manifest"
    more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
    return f"{where}: {err['msg'].removeprefix('Value error, ')}{more}"


def read_manifest(directory: str | Path) -> dict:
    """The validated manifest of the export in `directory`, as a dict (ExportError otherwise)."""
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir() or not (path.exists() or path.is_symlink()):
        raise ExportError(f"{directory} is not an rnnslim C export (no {MANIFEST})")
    raw = read_regular_file(path, MAX_MANIFEST_BYTES)
    try:
        meta = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ExportError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(meta, dict):
        raise ExportError(f"{path} is not a JSON object")
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: format {str(meta.get('format'))[:80]!r}, expected {FORMAT!r}")
    try:
        return ExportManifest.model_validate(meta).model_dump()
    except ValidationError as e:
        raise ExportError(f"{path}: {_one_line(e)}") from None
