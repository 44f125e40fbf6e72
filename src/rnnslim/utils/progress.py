"""Progress bars with ETA (rich) for every long loop: training, fine-tuning, evaluation,
calibration, search. One place decides whether anything is drawn.

    bar = progress_bar(total=steps, desc="train", enabled=progress)   # bar.update(1, loss=0.5); bar.close()
    for batch in track(batches, desc="calibrate"):                      # an iterable, with a bar
        ...
    with progress_scope(False):       # nothing drawn inside: run_pipeline(progress=False), `--json`
        ...

A bar is drawn only when all of these hold: its `enabled` argument, every enclosing
progress_scope, RNNSLIM_PROGRESS is not 0/false/no/off, and stderr is a terminal. Otherwise
it is a no-op object (no rich import, no thread), so scripts, pipes, CI logs and `--json`
output stay clean and a disabled bar costs nothing. Bars go to stderr, never stdout.

Bars opened while another is open (an evaluation inside training, a calibration inside a
pipeline stage) share one live display and appear under it. A `transient` bar (evaluation,
calibration: short and frequent) vanishes when done; the others leave one final line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
_SCOPE: ContextVar[bool] = ContextVar("rnnslim_progress", default=True)


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_allowed() -> bool:
    """Whether a bar opened now (with enabled=True) would be drawn."""
    env = os.environ.get("RNNSLIM_PROGRESS", "").strip().lower()
    return _SCOPE.get() and env not in ("0", "false", "no", "off") and _is_terminal()


@contextmanager
def progress_scope(enabled: bool = True) -> Iterator[None]:
    """Inside `with progress_scope(False)` no bar is drawn; progress_scope(True) changes nothing
    (an enclosing False still wins)."""
    token = _SCOPE.set(_SCOPE.get() and bool(enabled))
    try:
        yield
    finally:
        _SCOPE.reset(token)


class _Null:
    def update(self, n: int = 1, **fields) -> None:
        pass

    def close(self) -> None:
        pass


class _Live:
    """The one rich Progress on screen, shared by the bars open at the same time."""

    progress = None
    open_bars = 0

    @classmethod
    def acquire(cls):
        if cls.progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # transient: the live area is erased at the end; bars that stay are printed above it on close.
            # stdout is left alone (only stderr is redirected above the bars), so JSON on stdout stays intact.
            cls.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                    TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                                    transient=True, redirect_stdout=False, refresh_per_second=4)
            cls.progress.start()
        cls.open_bars += 1
        return cls.progress

    @classmethod
    def release(cls) -> None:
        cls.open_bars -= 1
        if cls.open_bars <= 0 and cls.progress is not None:
            cls.progress.stop()
            cls.progress, cls.open_bars = None, 0


class _RichBar:
    def __init__(self, total: int | None, initial: int, desc: str, transient: bool) -> None:
        self._p = _Live.acquire()
        self._t = self._p.add_task(desc, total=total, completed=initial, info="")
        self._transient = transient
        self._closed = False

    def update(self, n: int = 1, **fields) -> None:
        if fields:
            info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            self._p.update(self._t, advance=n, info=info)
        else:
            self._p.update(self._t, advance=n)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._transient:  # its final line stays on screen, above the live area
                task = next(t for t in self._p.tasks if t.id == self._t)
                self._p.console.print(self._p.make_tasks_table([task]))
            self._p.remove_task(self._t)
        finally:
            _Live.release()


def progress_bar(total: int | None, initial: int = 0, desc: str = "", enabled: bool = True,
                 transient: bool = False):
    """A bar with .update(n=1, **fields) (fields are shown after the ETA) and .close();
    a no-op object unless a bar may be drawn (see the module docstring). total None: unknown."""
    if not enabled or not progress_allowed():
        return _Null()
    return _RichBar(total, initial, desc, transient)


def track(items: Iterable[T], desc: str = "", total: int | None = None, enabled: bool = True,
          transient: bool = True) -> Iterator[T]:
    """Yield from `items` with a bar (total: len(items) when it has one). For loops a caller
    owns, e.g. a search's trials: `for trial in track(trials, "search", transient=False)`."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = progress_bar(total, desc=desc, enabled=enabled, transient=transient)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
