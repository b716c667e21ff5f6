"""Progress bars for long work: shown on a terminal, silent in pipes and tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Advance(Protocol):
    def __call__(self, description: str) -> None: ...


@contextmanager
def progress(total: int, description: str = "working", *, enabled: bool | None = None) -> Iterator[Advance]:
    """Yield ``advance(description)``; draws a rich bar on stderr only when it is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda description: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(next_description: str) -> None:
            bar.update(task, advance=1, description=next_description)

        yield advance
