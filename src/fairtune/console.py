"""The terminal: one shared rich console and a progress bar that stays out of logs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

# Tables are wide; outside a terminal (logs, CI) rich would otherwise assume 80 columns.
console = Console(width=None if sys.stdout.isatty() else 150)


@contextmanager
def progress_bar(show: bool, description: str, total: int) -> Iterator[Callable[[], None]]:
    """Yield a function that advances a transient progress bar by one step.

    Shown only when asked and in a terminal: a log or CI output stays clean.
    """
    if not show or not console.is_terminal:
        yield lambda: None
        return
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
