"""The terminal: one shared rich console and a progress bar that stays out of logs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

# Tables are wide; outside a terminal (logs, CI) rich would otherwise assume 80 columns.
console = Console(width=None if sys.stdout.isatty() else 150)


_shared: Progress | None = None
"""The run's progress view (:mod:`fairtune.selection.progress`): the phases' bars go there
while open."""


@contextmanager
def phases_under(bar: Progress) -> Iterator[None]:
    """Inside, every :func:`progress_bar` is a line of ``bar`` (under the run's line) instead
    of a display of its own."""
    global _shared
    _shared = bar
    try:
        yield
    finally:
        _shared = None


@contextmanager
def progress_bar(show: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    """Yield a function that advances a transient progress bar by one step.

    Shown only when asked and in a terminal: a log or CI output stays clean.
    """
    if not show or not console.is_terminal:
        yield lambda: None
        return
    if _shared is not None:
        shared, task = _shared, _shared.add_task(description, total=total)
        try:
            yield lambda: shared.advance(task)
        finally:
            shared.remove_task(task)
        return
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
