"""A small progress bar (rich) with live fields; silent when disabled or not a terminal."""

from __future__ import annotations

import sys


class _Null:
    def update(self, n: int = 1, **fields) -> None:
        pass

    def close(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, initial: int, desc: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                           transient=False, stderr=True)
        self._p.start()
        self._t = self._p.add_task(desc, total=total, completed=initial, info="")

    def update(self, n: int = 1, **fields) -> None:
        info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._p.update(self._t, advance=n, info=info)

    def close(self) -> None:
        self._p.stop()


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    if not enabled or not sys.stderr.isatty():
        return _Null()
    return _RichBar(total, initial, desc)
