"""Write a directory atomically: complete at its final path, or not there at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask (read by setting it and putting it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def respect_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file made by mkstemp (0600) or a folder made by mkdtemp (0700) the mode an
    ordinary open()/mkdir() would: 0666 or 0777 less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_directory(dest: Path, marker: str, error: type[Exception] = FileExistsError) -> Iterator[Path]:
    """Yield an empty temporary directory beside `dest`; on success it replaces `dest`.

    An existing `dest` is replaced only if it holds `marker` (a file this kind of output
    always has) or is empty, so a mistyped --out never deletes someone's folder (`error`
    is raised instead). On any exception the temporary directory is removed and `dest`
    is left as it was.
    """
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and ((dest / marker).exists() or not any(dest.iterdir()))):
        raise error(f"{dest} exists and is not an output of this kind (no {marker}); refusing to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        respect_umask(tmp, directory=True)
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_edit(model) -> Iterator[None]:
    """Edit an nn.Module in place, all or nothing: on any exception inside the block the
    module (its submodules, parameters, buffers, attributes such as `history`) is put back
    exactly as it was, then the exception propagates. Costs one deep copy of the model.

    The restored tensors are the snapshot's copies: an optimizer built before the edit
    must be rebuilt after a failed edit (its references point at the discarded tensors).
    """
    import copy

    snapshot = copy.deepcopy(model)
    try:
        yield
    except BaseException:
        model.__dict__.clear()
        model.__dict__.update(snapshot.__dict__)
        raise


def atomic_verb(fn):
    """Decorator for an in-place verb `fn(model, ...)`: all or nothing (see atomic_edit)."""
    import functools

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with atomic_edit(model):
            return fn(model, *args, **kwargs)

    return wrapper


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a crash leaves the old file or the new one, never half
    (the parent folder is created; the file gets the umask's mode, not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        respect_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data) -> None:
    """JSON (indent 1, no NaN: a non-finite number is an error) written with write_text_atomic."""
    import json

    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False))
