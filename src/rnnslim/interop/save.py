"""Import a foreign model file and save it as an rnnslim model directory (`rnnslim import`).

    model = import_file("kws.keras")                 # by suffix: .keras / .h5 -> Keras, .onnx -> ONNX
    save_imported(model, "kws.keras", "models/kws")  # model.json + model.safetensors

The saved manifest keeps where the model came from: `imported_from` {file, format, sha256,
parity_max_rel_error} and
the same record as the first entry of its history (history survives compress stages), so
`rnnslim eval / measure / compress / export` work on the directory and one can tell which file
it was made from.

Where it may write: `out` is a new path, an empty directory or an earlier rnnslim model
directory (replaced whole, atomically); never the input file, a directory holding it, a
symlink, a file, a directory with other contents, or the current directory (or one holding it).
"""

from __future__ import annotations

import os
from pathlib import Path

from rnnslim.io.format import MANIFEST, save_model
from rnnslim.models.sequence import SequenceModel
from rnnslim.utils.hashing import file_sha256

FORMATS = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".onnx": "onnx"}


def format_of(path: str | os.PathLike) -> str:
    """"keras" or "onnx" from the file's suffix; ValueError for anything else."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown model file type {Path(path).suffix or '(no suffix)'!r}; rnnslim imports "
                         ".keras / .h5 (Keras) and .onnx files")
    return fmt


def import_file(path: str | os.PathLike, drop_softmax: bool = False) -> SequenceModel:
    """Import a .keras / .h5 / .onnx file (parity-checked against its own framework)."""
    if format_of(path) == "keras":
        from rnnslim.interop.keras import import_keras

        return import_keras(path, drop_softmax=drop_softmax)
    from rnnslim.interop.onnx_import import import_onnx

    return import_onnx(path, drop_softmax=drop_softmax)


def _refuse(out, why: str) -> None:
    raise ValueError(f"{out}: {why}; refusing to write the imported model there")


def check_import_destination(out: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Raise ValueError when an imported model must not be written at `out` (module docstring)."""
    text = os.fspath(out)
    if not text or "\0" in text:
        _refuse(repr(text), "not a usable path")
    path = Path(os.path.abspath(text))
    if path.is_symlink():
        _refuse(path, "is a symbolic link (give the path it points to, if that is really meant)")
    real, src = Path(os.path.realpath(path)), Path(os.path.realpath(source))
    if real == src:
        _refuse(path, "is the input file")
    if real in src.parents:
        _refuse(path, "holds the input file")
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        _refuse(path, "is the current directory or holds it")
    if real.exists():
        if not real.is_dir():
            _refuse(path, "exists and is not a directory (an imported model is a directory)")
        if not (real / MANIFEST).is_file() and any(real.iterdir()):
            _refuse(path, f"exists, is not empty and is not an rnnslim model directory (no {MANIFEST})")
    return path


def save_imported(model: SequenceModel, source: str | os.PathLike, out: str | os.PathLike,
                  task: str | None = None) -> Path:
    """Save an imported `model` to directory `out` with where it came from (module docstring).
    `task`: the rnnslim task it serves (charlm, wordlm, classify, forecast), so later commands
    need only --data."""
    source = Path(source)
    path = check_import_destination(out, source)
    record = {"file": source.name, "format": format_of(source), "sha256": file_sha256(source)}
    if getattr(model, "import_parity", None) is not None:
        record["parity_max_rel_error"] = float(model.import_parity)
    model.history = [{"op": "import", **record}, *(getattr(model, "history", None) or [])]
    model.task_meta = {**(getattr(model, "task_meta", None) or {}), "name": source.stem}
    if task:
        model.task_meta["task"] = task
    return save_model(model, path, extra={"imported_from": record})
