"""The project's one progress display: rich bars on stderr (stdout is for results), and quiet transformers.

:class:`Bar` is one task (label, bar, done/total, elapsed, ETA); :class:`Tasks` is a display of several named
tasks updated by ``(task, done, total)`` callbacks, as long jobs (the unlearning bench, ``reproduce``) report.
Both are no-ops when disabled, so callers never branch on ``quiet``.
"""

from __future__ import annotations

from typing import Any


def make_progress(*extra: str, percent: bool = False, transient: bool = False) -> Any:
    """A ``rich.progress.Progress`` (not started) on stderr with the standard columns; ``extra`` are text-column
    templates shown after done/total (e.g. ``"{task.fields[skipped]} skipped"``); ``percent`` shows a
    percentage instead of done/total (for fractional totals)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    count = TextColumn("{task.percentage:>3.0f}%") if percent else MofNCompleteColumn()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), count,
               *(TextColumn(e) for e in extra), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, transient=transient, console=Console(stderr=True))


class Bar:
    """One progress task: ``advance(n)``, ``set(done)``, ``close()``; a context manager; silent when disabled.

    ``fields`` are extra task fields shown by ``extra`` column templates.
    """

    def __init__(self, label: str, total: float, enabled: bool = True, *, extra: tuple[str, ...] = (),
                 transient: bool = False, completed: float = 0, **fields: Any) -> None:
        self._progress = None
        if enabled:
            self._progress = make_progress(*extra, transient=transient)
            self._progress.start()
            self._task = self._progress.add_task(label, total=total, completed=completed, **fields)

    def advance(self, n: float = 1) -> None:
        if self._progress is not None and n:
            self._progress.update(self._task, advance=n)

    def set(self, done: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False


class Tasks:
    """Several named tasks in one display: ``update(task, done, total)`` adds a task on first sight."""

    def __init__(self, enabled: bool = True, *, percent: bool = False) -> None:
        self._progress = make_progress(percent=percent) if enabled else None
        self._ids: dict[str, Any] = {}

    def update(self, task: str, done: float, total: float) -> None:
        if self._progress is None:
            return
        total = max(total, 1)
        if task not in self._ids:
            self._ids[task] = self._progress.add_task(task, total=total)
        self._progress.update(self._ids[task], completed=done, total=total)

    __call__ = update

    def __enter__(self) -> Tasks:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> bool:
        if self._progress is not None:
            self._progress.stop()
        return False


def quiet_transformers() -> None:
    """Silence transformers' own progress bars (weights loading, shard writing) and warnings, so our progress
    display and one-line errors are all a user sees."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
