"""Progress bars for publish, drawn on stderr only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from staticreg.publish import Reporter


class _RichReporter(Reporter):
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._total = progress.add_task("total", total=0)
        self._lock = threading.Lock()

    def start_layer(self, key: str, name: str, total: int) -> None:
        with self._lock:
            self._tasks[key] = self._progress.add_task(f"layer {key}", total=total)
            whole = self._progress.tasks[self._total].total or 0
            self._progress.update(self._total, total=whole + total)

    def advance(self, key: str, amount: int) -> None:
        self._progress.advance(self._tasks[key], amount)
        self._progress.advance(self._total, amount)

    def finish_layer(self, key: str) -> None:
        with self._lock:
            self._progress.remove_task(self._tasks.pop(key))


@contextmanager
def reporter() -> Iterator[Reporter]:
    """A rich reporter on a terminal, a silent one otherwise."""
    if not sys.stderr.isatty():
        yield Reporter()
        return
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        yield _RichReporter(bars)
