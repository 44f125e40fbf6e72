"""Where an export may write: a new path, or a path an earlier rnnslim export made; never over
its input model, into a model directory, or over a file rnnslim did not create.

    directory formats (c, c-fp32, tflite): `out` is new, an empty directory, or a directory holding
        MARKER (rnnslim-export.json, written into every C export) and nothing but the files
        that marker lists (plus lib<NAME>.so and its .sha256 for a listed NAME.c: --build)
    file formats (onnx, onnx-int8, torch): `out` is new, or a file an rnnslim export wrote (an
        ONNX graph with the step-layout metadata, a .pt2 archive with the layout file); any
        other regular file only with force=True (`--force`)
    refused whatever force says: the input model's files, its directory or a path inside it
        (real paths: symlinks resolved), a model's files or directory, a path inside a C export
        (its marker would no longer list what it holds), a symlink (dangling or
        not), a FIFO / device / socket, the file-system root, the current directory or one
        holding it, a parent that is not a writable directory, a name too long for the file
        system (the export's temporary names add up to 40 bytes)

Every export function checks its destination before it computes anything and again just
before it renames its result into place (what appeared meanwhile is not replaced either).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from rnnslim.utils.atomic import atomic_directory, respect_umask

# The marks a single-file export leaves, by which is_rnnslim_file recognises it (defined here, read
# by onnx.py and torch_export.py, so this module imports neither of them):
LAYOUT_KEY = "rnnslim_step_layout"  # ONNX metadata_props key holding the step layout (JSON)
LAYOUT_FILE = "rnnslim_step_layout.json"  # extra file inside a torch.export .pt2 archive

MARKER = "rnnslim-export.json"
WRITTEN_BY = "rnnslim export"
DIRECTORY_FORMATS = ("c", "c-fp32", "tflite")
FILE_FORMATS = ("onnx", "onnx-int8", "torch")
_TEMP_ROOM = 40  # bytes the temporary names beside `out` add to its name (".NAME.XXXXXXXX.fp32.tmp")
_MARKER_MAX_BYTES = 1 << 20
_SCAN_MAX_ENTRIES = 10_000
_ONNX_MAX_BYTES = 2 << 30  # protobuf's limit: a larger file is no ONNX graph rnnslim wrote


class ExportDestinationError(ValueError, FileExistsError):
    """`out` is a place an export must not write (a ValueError; a FileExistsError for callers
    of the earlier API, which raised that for a folder that was not an export)."""


def _refuse(path, why: str) -> None:
    raise ExportDestinationError(f"{os.fsdecode(path)!s}: {why}; refusing to export there")


def _real(path) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def input_paths(model) -> tuple[set[Path], Path | None]:
    """Real paths of the files `model` was loaded from (load_model sets model.source_path) and of
    its directory when it is a saved-model directory (model.json inside); nothing for a model
    built in memory."""
    src = getattr(model, "source_path", None)
    if not src:
        return set(), None
    manifest = _real(src)
    files = {manifest, manifest.with_suffix(".safetensors")}
    with contextlib.suppress(Exception):  # the weights' name comes from the manifest (weights_file)
        from rnnslim.io.format import resolve_model_path

        files.add(_real(resolve_model_path(manifest)[1]))
    return files, manifest.parent if manifest.name == "model.json" else None


def _is_c_export_manifest(p: Path) -> bool:
    """model.json of a C export (format rnnslim-c-*), not of a model."""
    try:
        if p.stat().st_size > _MARKER_MAX_BYTES:
            return False
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("format", "")).startswith("rnnslim-c-")


def _is_model_dir(d: Path) -> bool:
    """A directory save_model wrote: a model.json that is no C export's manifest. (Loose NAME.json +
    NAME.safetensors pairs are protected file by file, not their whole folder.)"""
    try:
        return (d / "model.json").is_file() and not (d / MARKER).exists() and not _is_c_export_manifest(d / "model.json")
    except OSError:
        return False


def _is_model_file(p: Path) -> bool:
    return p.suffix == ".safetensors" or (p.suffix == ".json" and p.with_suffix(".safetensors").exists())


def read_marker(d: Path) -> dict | None:
    """The marker of an earlier C export in directory `d`, or None when there is none (or it is not one)."""
    p = d / MARKER
    try:
        st = os.lstat(p)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MARKER_MAX_BYTES:
            return None
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(meta, dict) and meta.get("written_by") == WRITTEN_BY and isinstance(meta.get("files"), list)):
        return None
    files = meta["files"]
    if not all(isinstance(f, str) and f and "/" not in f and f not in (".", "..") and not f.endswith(".safetensors")
               for f in files):
        return None
    return meta


def _check_earlier_export_dir(d: Path) -> None:
    """An existing directory `out` is replaced whole: only when it is empty or an earlier C export
    holding nothing but what it wrote (a user's notes or a model inside would be deleted)."""
    with os.scandir(d) as it:
        entries = [e for _, e in zip(range(_SCAN_MAX_ENTRIES + 1), it)]
    if not entries:
        return
    if len(entries) > _SCAN_MAX_ENTRIES:
        _refuse(d, f"holds more than {_SCAN_MAX_ENTRIES:,} entries and is not an rnnslim export directory")
    meta = read_marker(d)
    if meta is None:
        _refuse(d, f"exists, is not empty and is not an rnnslim export directory (no {MARKER})")
    built = [f"lib{f[:-2]}.so{ext}" for f in meta["files"] if f.endswith(".c") for ext in ("", ".sha256")]
    known = {*meta["files"], *built, MARKER}
    foreign = sorted(e.name for e in entries if e.name not in known or not e.is_file(follow_symlinks=False))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        _refuse(d, f"holds files an rnnslim export did not write ({shown}); move them or choose a new --out")


def is_rnnslim_file(p: Path) -> bool:
    """A file an rnnslim single-file export wrote: an ONNX graph carrying the step-layout metadata
    or a .pt2 archive carrying the layout file (parsed, not guessed from the name)."""
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                return any(n == f"extra/{LAYOUT_FILE}" or n.endswith(f"/extra/{LAYOUT_FILE}") for n in z.namelist())
        if p.stat().st_size > _ONNX_MAX_BYTES:
            return False
        import onnx

        proto = onnx.load(str(p), format="protobuf", load_external_data=False)
        return any(m.key == LAYOUT_KEY for m in proto.metadata_props)
    except Exception:  # noqa: BLE001 - anything unreadable or unparsable is not an rnnslim export
        return False


def _check_parent(path: Path) -> None:
    """The nearest existing ancestor must be a directory this process may write into."""
    for a in path.parents:
        try:
            st = os.stat(a)
        except FileNotFoundError:
            continue
        except OSError as e:
            _refuse(path, f"its parent {a} cannot be used ({e.strerror})")
        if not stat.S_ISDIR(st.st_mode):
            _refuse(path, f"{a} is not a directory")
        if not os.access(a, os.W_OK | os.X_OK):
            _refuse(path, f"directory {a} is not writable")
        return


def check_destination(out, fmt: str, model=None, force: bool = False) -> Path:
    """Raise ExportDestinationError when format `fmt` must not write at `out` (see the module
    docstring); returns `out` as an absolute path. `model`: the model being exported (its
    source_path names the input to protect)."""
    text = os.fspath(out)
    if not text or "\0" in text:
        _refuse(repr(text), "not a usable path (empty or holding a NUL byte)")
    directory = fmt in DIRECTORY_FORMATS
    path = Path(os.path.abspath(text))
    if path == Path(path.anchor):
        _refuse(path, "is the file-system root")
    max_name = 255
    with contextlib.suppress(OSError, ValueError):
        max_name = os.pathconf(next((a for a in path.parents if a.is_dir()), "/"), "PC_NAME_MAX")
    if len(os.fsencode(path.name)) > max_name - _TEMP_ROOM:
        _refuse(path.name[:40] + "...", f"file name too long ({len(os.fsencode(path.name))} bytes; at most "
                f"{max_name - _TEMP_ROOM} here)")
    if len(os.fsencode(text)) > 4000:
        _refuse(text[:40] + "...", "path too long")
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a parent that is a file: named by _check_parent
        st = None
    except OSError as e:
        _refuse(path, f"cannot be used ({e.strerror})")
    if st is not None and stat.S_ISLNK(st.st_mode):
        _refuse(path, "is a symbolic link (give the path it points to, if that is really meant)")
    real = _real(path)
    _refuse_protected(path, real, model, directory)
    if st is not None:
        _refuse_existing(path, real, st, fmt, force)
    _check_parent(path)
    return path


def _refuse_protected(path: Path, real: Path, model, directory: bool) -> None:
    """What no export replaces or writes into, force or not: the input, models, C exports' insides, the cwd."""
    files, home = input_paths(model)
    if real in files:
        _refuse(path, "is the input model's file")
    if home is not None and _within(real, home):
        _refuse(path, "is the input model's directory" if real == home else "is inside the input model's directory")
    if any(real in f.parents for f in files):
        _refuse(path, "holds the input model")
    if directory and _within(_real(os.getcwd()), real):
        _refuse(path, "is the current directory or holds it")
    if _is_model_file(real):
        _refuse(path, "is part of a model (its weights or its description)")
    if _is_model_dir(real.parent):
        _refuse(path, f"is inside a model directory ({real.parent})")
    if read_marker(real.parent) is not None:
        _refuse(path, f"is inside an rnnslim C export ({real.parent}: export there as a whole, or choose a new path)")


def _refuse_existing(path: Path, real: Path, st: os.stat_result, fmt: str, force: bool) -> None:
    """An existing `out`: an earlier export of the same kind, or (single files, with force) a user's file."""
    if fmt in DIRECTORY_FORMATS:
        if not stat.S_ISDIR(st.st_mode):
            _refuse(path, "exists and is not a directory (c, c-fp32 and tflite write a directory)")
        if _is_model_dir(real):
            _refuse(path, "is a model directory")
        _check_earlier_export_dir(real)
    elif stat.S_ISDIR(st.st_mode):
        _refuse(path, f"is a directory ({fmt} writes one file: give its name)")
    elif not stat.S_ISREG(st.st_mode):
        _refuse(path, "is not a regular file (a FIFO, device or socket)")
    elif not force and not is_rnnslim_file(real):
        _refuse(path, "exists and was not written by an rnnslim export (--force / force=True replaces it)")


def temp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new, empty file beside `path` that no one else owns (created exclusively: a file or
    symlink planted under a predictable name is never written through)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    respect_umask(tmp)  # the mode an ordinary open() would give, not mkstemp's 0600
    return Path(tmp)


def place_file(tmp: Path, out: Path, fmt: str, model=None, force: bool = False) -> None:
    """Rename the finished export `tmp` to `out`, checking `out` once more just before."""
    check_destination(out, fmt, model, force)
    os.replace(tmp, out)


@contextlib.contextmanager
def export_directory(out, fmt: str, model=None) -> Iterator[Path]:
    """Yield an empty temporary directory beside `out`; on success MARKER (format `fmt`, the files
    the block wrote) is added and it replaces `out`, checked again just before (atomic_directory)."""
    from rnnslim import __version__

    out = check_destination(out, "c", model)
    with atomic_directory(out, MARKER, error=ExportDestinationError) as tmp:
        yield tmp
        files = sorted(p.name for p in tmp.iterdir() if p.name != MARKER)
        (tmp / MARKER).write_text(json.dumps({"written_by": WRITTEN_BY, "format": fmt, "rnnslim_version": __version__,
                                              "files": files}, indent=1))
        check_destination(out, "c", model)


__all__ = ["DIRECTORY_FORMATS", "ExportDestinationError", "FILE_FORMATS", "MARKER", "check_destination",
           "export_directory", "input_paths", "is_rnnslim_file", "place_file", "read_marker", "temp_beside"]
