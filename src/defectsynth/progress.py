"""Rich progress bars for long work; library functions take ``progress: bool`` and pass it here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

stderr_console = Console(stderr=True)


def make_progress(transient: bool = False) -> Progress:
    """A progress display on stderr: description, bar, done/total, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr_console,
        transient=transient,
    )


def track(
    iterable: Iterable[T], total: int | None = None, description: str = "working", enabled: bool = True
) -> Iterator[T]:
    """Yield from ``iterable``, showing a progress bar when ``enabled``."""
    if not enabled:
        yield from iterable
        return
    with make_progress() as bar:
        task = bar.add_task(description, total=total, status="")
        for item in iterable:
            yield item
            bar.advance(task)


@contextmanager
def progress_bar(
    enabled: bool, total: int, description: str
) -> Iterator[tuple[Callable[..., None], Callable[[], None]]]:
    """``(update(status=...), advance())`` of one Rich bar of ``total`` steps, or no-ops when not ``enabled``."""
    if not enabled:
        yield (lambda **_: None), (lambda: None)
        return
    with make_progress() as bar:
        task = bar.add_task(description, total=total, status="")
        yield (lambda **kw: bar.update(task, **kw)), (lambda: bar.advance(task))
