"""One progress view over a whole run: which candidate is fitted, how far along, how long left.

A run (a comparison, a demo, a search) opens the view with :func:`run_view`,
saying how many candidates (a method's setting on one seed) it will fit; the
code that fits them calls :func:`candidate_started` and
:func:`candidate_finished`. In a terminal the view is one line (method, seed,
setting, candidate k of n, elapsed time and an estimate of what is left) with
the bar of the running training phase under it; elsewhere (a file, a log) it
prints one line per finished candidate with its held-out score. Where no view
is open, the calls do nothing (the worker processes of ``--jobs``: their
parent reports their candidates when their results come back).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fairtune import console as terminal
from fairtune.evaluation.criterion import Criterion
from fairtune.selection.rules import HeldOutScore


def setting_text(setting: dict[str, Any]) -> str:
    """A setting in a few words: ``impair_lr=0.001 keep=0.5``, or ``defaults``."""
    return (
        " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items())
        or "defaults"
    )


def clock(seconds: float) -> str:
    """Seconds as ``h:mm:ss``."""
    if math.isnan(seconds):
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class RunView:
    """The progress of one run of ``total`` candidates (see the module's docstring), their
    held-out scores told by ``criterion``."""

    def __init__(self, total: int, criterion: Criterion) -> None:
        self.total = total
        self.criterion = criterion
        self.done = 0
        self.begin = time.perf_counter()
        self._started: dict[tuple[str, int], float] = {}
        self._bar: Progress | None = None
        self._task: Any = None

    def left(self) -> float:
        """Seconds left, estimated from the mean time of the candidates finished so far."""
        if self.done == 0:
            return math.nan
        elapsed = time.perf_counter() - self.begin
        return elapsed / self.done * max(self.total - self.done, 0)

    def started(self, method: str, seed: int, setting: dict[str, Any]) -> None:
        """A candidate begins: in a terminal, the line names it."""
        self._started[(method, seed)] = time.perf_counter()
        k = min(self.done + 1, self.total)
        self._describe(
            f"{method} · seed {seed} · {setting_text(setting)} · candidate {k} of {self.total}"
        )

    def finished(
        self,
        method: str,
        seed: int,
        setting: dict[str, Any],
        held: HeldOutScore | None,
        failed: str | None = None,
    ) -> None:
        """A candidate ends: the count advances; outside a terminal, one line says so."""
        self.done += 1
        begin = self._started.pop((method, seed), None)
        took = "" if begin is None else f"{time.perf_counter() - begin:.1f}s; "
        if self._bar is not None:  # the next start names its candidate; with workers, none
            self._bar.update(self._task, completed=self.done)
            self._describe(f"{method} · seed {seed} · {setting_text(setting)} done")
            return
        if failed is not None:
            outcome = f"failed: {failed}"
        elif held is None:
            outcome = "fitted"
        else:
            mark = " (degenerate)" if held.degenerate else ""
            label, value = self.criterion.label, held.of(self.criterion)
            outcome = f"held-out AUC {held.auc:.3f}, {label} at t {value:.3f}{mark}"
        elapsed = time.perf_counter() - self.begin
        terminal.console.print(
            f"[{self.done}/{self.total}] {method} seed {seed} {setting_text(setting)}: "
            f"{outcome} ({took}elapsed {clock(elapsed)}, about {clock(self.left())} left)",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )

    def _describe(self, text: str) -> None:
        if self._bar is not None:
            left = self.left()
            estimate = "" if math.isnan(left) else f" · about {clock(left)} left"
            self._bar.update(self._task, description=text + estimate)

    @contextmanager
    def shown(self) -> Iterator[RunView]:
        """The view live for the run: a bar in a terminal, nothing to draw elsewhere."""
        if not terminal.console.is_terminal:
            yield self
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=terminal.console, transient=True) as bar:
            self._bar = bar
            self._task = bar.add_task(f"{self.total} candidates", total=self.total)
            with terminal.phases_under(bar):
                yield self
        self._bar = None


_current: RunView | None = None


@contextmanager
def run_view(
    total: int, show: bool = True, criterion: Criterion | None = None
) -> Iterator[RunView | None]:
    """Open the progress view of a run of ``total`` candidates (none when not ``show``),
    telling each held-out score by ``criterion`` (default: equalized odds).

    Where a view is open already (a demo around its comparisons), that one goes on: the
    outer run knows the whole count.
    """
    global _current
    if _current is not None or not show:
        yield _current
        return
    view = RunView(total, criterion or Criterion())
    _current = view
    try:
        with view.shown():
            yield view
    finally:
        _current = None


def candidate_started(method: str, seed: int, setting: dict[str, Any]) -> None:
    """Tell the open view (if any) that ``method`` with ``setting`` starts fitting on ``seed``."""
    if _current is not None:
        _current.started(method, seed, setting)


def candidate_finished(
    method: str,
    seed: int,
    setting: dict[str, Any],
    held: HeldOutScore | None,
    failed: str | None = None,
) -> None:
    """Tell the open view (if any) that a candidate ended: its held-out score, or why it
    failed."""
    if _current is not None:
        _current.finished(method, seed, setting, held, failed)
