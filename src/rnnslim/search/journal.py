"""The search's journal file: checked before a byte is written, a torn last record cut off.

    storage = open_journal(Path("runs/s/journal.log"))   # Optuna JournalStorage over a checked file
    check_journal_path(Path("notes.txt"))                 # StorageError: not an Optuna journal

A journal is Optuna's JournalFileBackend log: one JSON record a line, each starting
`{"op_code":N,"worker_id":...`, appended under a lock (`PATH.lock`, a symlink to PATH).
What rnnslim adds to Optuna's backend:

- A path that exists must be a journal: a regular file whose every complete line is a
  record. Anything else (text, JSON, binary, a directory, a FIFO, a device, a stray
  `PATH.lock` that is not the lock symlink) is refused before anything is written: rnnslim
  never appends to a file it did not create. An empty file counts as a journal with no
  records: Optuna creates a journal empty before its first record, so a worker starting
  at the same moment as another sees one, and appending to it loses nothing.
- A torn last record (what a kill -9 or a full disk leaves after the last newline: a
  prefix of a record) is ignored by Optuna's reader, but the next append would glue a new
  record onto it and leave a corrupt line in the middle, bricking the study. It is cut off
  under the lock before the next append (and when the journal is opened), with a
  TornRecordWarning naming the file and the byte offset.
- Any other damage (a line in the middle that is not a record, a tail that is not a record
  prefix, records Optuna cannot replay) is a StorageError naming the file and the byte
  offset; nothing is repaired or written.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import time
import warnings
from pathlib import Path

RECORD_START = b'{"op_code":'  # every record Optuna writes (json.dumps, separators (",", ":"))
OP_CODES = range(0, 11)  # optuna.storages.journal JournalOperation: CREATE_STUDY .. DISCARD_TRIALS
LOCK_GRACE_S = 30  # a lock older than this is a dead writer's (Optuna's default)
_CHUNK = 1 << 16


class StorageError(ValueError):
    """A --storage path or URL that cannot hold a study (the message names it)."""


class TornRecordWarning(UserWarning):
    """A journal's last record was cut short (a writer killed mid-write) and was dropped."""


class StaleLockWarning(UserWarning):
    """A journal lock left by a writer killed while holding it was broken after the grace time."""


def check_journal_path(path: Path) -> None:
    """Refuse a path that exists and is not a journal; reads it, writes nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise StorageError(f"--storage {path} is a symlink to a missing file; give a new path") from None
        return
    except OSError as e:
        raise StorageError(f"--storage {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StorageError(f"--storage {path} is a directory; give a journal file path (e.g. {path}/journal.log)")
    if not stat.S_ISREG(st.st_mode):
        raise StorageError(f"--storage {path} is not a regular file (a FIFO, socket or device); give a journal file path")
    lock = f"{path}.lock"
    if os.path.lexists(lock) and not os.path.islink(lock):  # Optuna's lock is a symlink
        raise StorageError(f"--storage {path}: {lock} exists and is not a journal lock; move it away")
    _scan(Path(path))


def _scan(path: Path) -> int:
    """Validate every complete line of the journal at `path`; the byte offset where its
    complete records end (= its size unless a torn record follows)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(RECORD_START)) not in (b"", RECORD_START):  # before reading a long first line
                raise StorageError(_not_journal(path))
            f.seek(0)
            offset = 0
            for line in f:
                if not line.endswith(b"\n"):
                    _check_tail(path, line, offset)
                    return offset
                _check_record(path, line, offset)
                offset += len(line)
            return offset
    except OSError as e:
        raise StorageError(f"journal {path}: {e.strerror or e}") from None


def _check_record(path: Path, line: bytes, offset: int) -> None:
    rec = None
    if line.startswith(RECORD_START):
        try:
            rec = json.loads(line)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            pass
    ok = (isinstance(rec, dict) and type(rec.get("op_code")) is int and rec["op_code"] in OP_CODES
          and isinstance(rec.get("worker_id"), str))
    if not ok:
        raise StorageError(_not_journal(path) if offset == 0 else _damaged(path, offset, "is not a journal record"))


def _check_tail(path: Path, tail: bytes, offset: int) -> None:
    """Bytes after the last newline: a torn record (a prefix of one) or damage. (A file with no
    complete record must begin with a whole RECORD_START, checked in _scan: `{` alone is not ours.)"""
    if not (tail.startswith(RECORD_START) or RECORD_START.startswith(tail)):
        raise StorageError(_damaged(path, offset, "is not a journal record (nor a torn one)"))


def _not_journal(path: Path) -> str:
    return (f"--storage {path} is not an Optuna journal (its first line is not a journal record); rnnslim "
            "appends only to journals: give a new path")


def _damaged(path: Path, offset: int, what: str) -> str:
    return (f"journal {path} is damaged: the line at byte {offset} {what}; rnnslim changes nothing in it "
            "(keep a copy, then cut the file before that byte to resume, or start a new --storage)")


def cut_torn_tail(path: Path) -> None:
    """Drop a torn last record (call under the journal's lock: no writer is mid-record)."""
    try:
        size = os.path.getsize(path)
        if size == 0 or _last_byte(path) == b"\n":
            return
        end = _scan(path)
        if end < size:
            os.truncate(path, end)
            warnings.warn(f"journal {path}: dropped a torn last record at byte {end} ({size - end} bytes, "
                          "a writer killed mid-write); the study is intact up to it", TornRecordWarning, stacklevel=3)
    except OSError as e:
        raise StorageError(f"journal {path}: {e.strerror or e}") from None


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


@functools.cache
def _backend_class():
    """Optuna's file backend with the checks above (built on first use: Optuna is optional)."""
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    class StaleAwareLock(JournalFileSymlinkLock):
        """Optuna's symlink lock, aged by the link's own mtime (lstat). Optuna stats through
        the link: a lock left by a writer killed inside it that points at a relative path
        dangles, and Optuna then spins forever instead of breaking it after the grace time."""

        def acquire(self) -> bool:
            pause, seen, since = 0.001, None, time.monotonic()
            while True:
                try:
                    os.symlink(self._lock_target_file, self._lock_file)
                    return True
                except FileExistsError:
                    try:
                        mtime = os.lstat(self._lock_file).st_mtime
                    except FileNotFoundError:
                        continue  # released meanwhile
                    if mtime != seen:  # a new holder: its grace time starts now
                        seen, since = mtime, time.monotonic()
                    elif time.monotonic() - since > self.grace_period:
                        warnings.warn(f"journal lock {self._lock_file} held for {self.grace_period} s (a writer "
                                      "killed inside it); breaking it", StaleLockWarning, stacklevel=2)
                        try:
                            self.release()
                        except RuntimeError:
                            pass  # another worker broke it first
                        continue
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)

    class CheckedJournalBackend(JournalFileBackend):
        def __init__(self, path: Path) -> None:
            check_journal_path(path)
            lock = StaleAwareLock(os.path.abspath(path), grace_period=LOCK_GRACE_S)  # absolute: never dangles
            super().__init__(str(path), lock)
            self.path = Path(path)

        def cut_torn_tail(self) -> None:
            if os.path.getsize(self.path) and _last_byte(self.path) != b"\n":  # else: no lock needed
                with get_lock_file(self._lock):
                    cut_torn_tail(self.path)

        def read_logs(self, log_number_from: int):
            try:
                yield from super().read_logs(log_number_from)
            except ValueError as e:  # a line that is not JSON (written since the journal was opened)
                raise StorageError(f"journal {self.path} is damaged ({e}); rnnslim changes nothing in it") from None

        def append_logs(self, logs: list[dict]) -> None:
            # Optuna's append_logs, with a torn tail cut under the same lock first
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock):
                cut_torn_tail(self.path)
                with open(self.path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())

    return CheckedJournalBackend


def open_journal(path: Path):
    """An Optuna JournalStorage over the journal at `path` (created when missing)."""
    from optuna.storages import JournalStorage

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = _backend_class()(path)
        backend.cut_torn_tail()
        return JournalStorage(backend)  # replays every record now
    except StorageError:
        raise
    except OSError as e:
        raise StorageError(f"journal {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - records that parse but do not replay (edited or damaged)
        raise StorageError(f"journal {path} cannot be replayed ({type(e).__name__}: {e}); "
                           "rnnslim changes nothing in it") from None
