"""The project's one rich progress-bar layout: description, bar, done/total, extra text, elapsed time and ETA."""

from __future__ import annotations

from typing import Any


def make_progress(*extra: str, stderr: bool = False, transient: bool = False) -> Any:
    """A ``rich.progress.Progress`` (not started) with the standard columns; ``extra`` are text-column
    templates shown after done/total (e.g. ``"{task.fields[skipped]} skipped"``)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               *(TextColumn(e) for e in extra), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    kw = {"console": Console(stderr=True)} if stderr else {}
    return Progress(*columns, transient=transient, **kw)


class NullProgress:
    """What a disabled progress bar is: a context manager whose methods do nothing."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def add_task(self, *args: Any, **kwargs: Any) -> None:
        return None

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


def quiet_transformers() -> None:
    """Silence transformers' own progress bars (weights loading, shard writing) and warnings, so our progress
    display and one-line errors are all a user sees."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
