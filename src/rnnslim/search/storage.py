"""Where the study lives, and what happens to trials whose worker died.

    storage = open_storage(None, search_dir)              # search_dir/journal.log (JournalStorage)
    storage = open_storage("runs/s/journal.log", d)       # a journal file elsewhere (shared disk)
    storage = open_storage("postgresql://u:p@host/db", d) # Optuna's RDBStorage (any SQLAlchemy URL)

A journal file is an append-only log: a kill -9 loses at most the record being written (its
torn remains are dropped with a warning, journal.py; a file that is not a journal is refused), and
every process that opens it (several workers on one machine, or on machines sharing the
disk) replays the same study. A database URL lets workers on different machines share one
study (docs/search.md shows PostgreSQL).

Dead workers: a running trial carries its worker's identity (host, pid, process start time)
and a heartbeat (a system attr rewritten every `HEARTBEAT_S` seconds by a thread). Before
asking for a trial, every worker calls `recover_stale`: a RUNNING trial whose worker is a
dead process on this host, or whose heartbeat is older than `grace_s`, is set to FAIL and a
copy with the same parameters is queued (WAITING) so the next free worker runs it again.
Its run directory is named by the recipe hash, so the retry resumes the stages the dead
worker finished. Only one worker wins the FAIL transition (the storage refuses a second),
so a stale trial is retried once. Optuna's own heartbeat exists only for RDBStorage; this
one works the same on every storage.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from rnnslim.search.journal import StorageError, check_journal_path, open_journal

JOURNAL_FILE = "journal.log"
WORKER_ATTR = "rnnslim_worker"
HEARTBEAT_ATTR = "rnnslim_heartbeat"
HEARTBEAT_S = 20.0
GRACE_S = 300.0  # a heartbeat older than this marks the trial stale (workers on other hosts)
MAX_RETRIES = 2


def open_storage(url: str | None, search_dir: Path):
    """An Optuna storage for `url`: None = the search directory's journal file; a path = a
    journal file (journal.py: checked, a torn last record cut); scheme://... = a database
    (RDBStorage). Every failure is a StorageError naming the file (or the redacted URL)."""
    if url and "://" in url:
        if url.startswith(("redis://", "rediss://")):
            raise StorageError("redis storage is not supported; use a journal file or a database URL")
        return _rdb(url)
    return open_journal(Path(url) if url else Path(search_dir) / JOURNAL_FILE)


def check_storage(url: str | None) -> None:
    """Refuse a --storage path that exists and is not a journal, before anything is written."""
    if url and "://" not in url:
        check_journal_path(Path(url))


def _rdb(url: str, attempts: int = 4):
    """RDBStorage; workers starting together on an empty database race to create its tables
    (one gets a unique-violation error): wait and try again, the winner's tables are then there."""
    import optuna

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as e:
            raise ImportError(f"{redact(url)}: no database driver ({e}); for PostgreSQL: pip install psycopg2-binary "
                              "and a postgresql+psycopg2:// URL (or pip install 'psycopg[binary]')") from None
        except Exception as e:  # noqa: BLE001 - sqlalchemy IntegrityError / ProgrammingError of the race
            if attempt + 1 == attempts:
                msg = str(e).replace(url, redact(url) or "")  # sqlalchemy quotes a URL it cannot parse
                raise StorageError(f"--storage {redact(url)}: {type(e).__name__}: {msg}") from None
            time.sleep(1.0 + attempt)


def redact(url: str | None) -> str | None:
    """A storage URL without its password (for results files and logs)."""
    if not url or "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot (Linux), telling a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # state, ..., starttime (field 22)


def worker_identity() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _dead_here(worker: dict) -> bool:
    """The worker ran on this host and its process is gone (or is a zombie, or the pid was reused)."""
    if worker.get("host") != socket.gethostname() or not isinstance(worker.get("pid"), int):
        return False
    pid = worker["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    start = _start_time(pid)
    if worker.get("start") is None:
        return False
    return start is None or start != worker["start"]


class Heartbeat:
    """Rewrites the trial's heartbeat attr every `interval` seconds until closed."""

    def __init__(self, storage, trial_id: int, interval: float = HEARTBEAT_S) -> None:
        self._storage, self._id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="rnnslim-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self._storage.set_trial_system_attr(self._id, HEARTBEAT_ATTR, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - the trial finished meanwhile, or the storage hiccupped
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def is_stale(trial, now: float, grace_s: float = GRACE_S) -> bool:
    worker = trial.system_attrs.get(WORKER_ATTR)
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if isinstance(worker, dict) and _dead_here(worker):
        return True
    if isinstance(beat, (int, float)):
        return now - beat > grace_s
    start = trial.datetime_start.timestamp() if trial.datetime_start else None  # asked but never claimed
    return start is not None and now - start > grace_s


def recover_stale(study, grace_s: float = GRACE_S, max_retries: int = MAX_RETRIES, log=None) -> list[int]:
    """Fail the RUNNING trials of dead workers and queue each once more; the numbers failed."""
    import optuna
    from optuna.trial import TrialState

    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(t, now, grace_s):
            continue
        try:  # the reason first: a finished trial takes no more attrs
            study._storage.set_trial_user_attr(t._trial_id, "error", "worker died (stale heartbeat or dead process)")
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # another worker got there first
        failed.append(t.number)
        history = list(t.system_attrs.get("retry_history", [])) + [t.number]
        if log:
            log(f"trial {t.number}: its worker died; marked FAIL" +
                ("" if len(history) > max_retries else ", queued again"))
        if len(history) > max_retries:
            continue
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            system_attrs={"retry_history": history, "retry_of": t.number}))
    return failed
