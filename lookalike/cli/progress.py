"""Progress bars on stderr: files per second, downloads in bytes, named stages.

Imported by the commands that show bars, when they run: rich's progress module is one
of the heavier parts of the command line's start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from .common import errors


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} files/s" if speed else "", style="cyan")


class CountOrBytes(ProgressColumn):
    """``counts`` for a task of files, ``transfer`` for a download (a task with
    ``bytes=True``), so that weights can download under the same bars."""

    def __init__(self, counts: ProgressColumn, transfer: ProgressColumn) -> None:
        super().__init__()
        self.counts, self.transfer = counts, transfer

    def render(self, task: Task) -> Any:
        return (self.transfer if task.fields.get("bytes") else self.counts).render(task)


def bytes_progress(bar: Progress, description: str) -> Callable[[int, int | None], None]:
    """A download's ``progress(done, total)`` as a bytes task on ``bar``, added at the
    first report (nothing shows when nothing downloads)."""
    task: list[TaskID] = []

    def progress(done: int, total: int | None) -> None:
        if not task:
            task.append(bar.add_task(description, total=total, bytes=True))
        bar.update(task[0], completed=done, total=total)

    return progress


def stage_progress() -> tuple[Progress, Callable[[str, int, int], None]]:
    """A bar and its ``update(stage, done, total)``: one line per stage, added when the
    stage first reports."""
    bar = counted("[bold]{task.description}")
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def counted(description: str, *, disable: bool = False) -> Progress:
    """A bar of ``description``: done of total, time remaining."""
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=errors, disable=disable)


def files_and_downloads(*, disable: bool = False) -> Progress:
    """Bars of files (done of total, files per second) and of downloads (bytes, bytes per
    second: tasks added with ``bytes=True``) together."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    CountOrBytes(MofNCompleteColumn(), DownloadColumn()),
                    CountOrBytes(RateColumn(), TransferSpeedColumn()), TimeRemainingColumn(),
                    console=errors, disable=disable)


def downloads(*, disable: bool = False) -> Progress:
    """A bar of downloads: bytes, bytes per second."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=errors,
                    disable=disable)
