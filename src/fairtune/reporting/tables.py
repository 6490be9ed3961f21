"""Comparison tables that fit the terminal: the headline first, the other metrics folded.

The headline table has one row per method and the few columns a decision needs: AUC,
the criterion's metric (EOdds (mean) by default) at the chosen threshold t with its 95%
interval, the change in AUC from the starting model and a verdict. It fits 80
columns with every cell whole. :func:`fold` splits a wide table into tables of
the same rows that each fit a width, the first column repeated in each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from fairtune.evaluation.criterion import Criterion, metric
from fairtune.evaluation.evaluate import VerdictSettings
from fairtune.selection.results import ResultRow, degenerate_methods
from fairtune.studies.summary import BOOTSTRAP, T_OVER_SEEDS, Interval, interval

START = "baseline"
"""The row of the starting model, which every verdict compares with."""

DEGENERATE = "†"
"""Marks a value taken where the model is degenerate."""

FAIRER, LESS_FAIR, UNCHANGED, NO_VERDICT = "fairer", "less fair", "≈ start", "n/a"
"""The verdicts: beyond both 95% intervals lower, higher, within them, or undefined."""

NO_EVIDENCE = "degenerate"
"""The verdict where the model is degenerate at t: its gaps are no evidence."""


def degenerate_note(scope: str = "") -> str:
    """What :data:`DEGENERATE` means, with the default bounds of :class:`VerdictSettings`."""
    low, high = VerdictSettings().bounds
    return (
        f"{DEGENERATE} degenerate{scope}: at that threshold some group's positive rate is below "
        f"{low:.0%} or above {high:.0%} (almost one decision for the whole group), so its "
        "gaps are no evidence of fairness"
    )


def fmt(value: float | None, ci: Sequence[float] | None = None) -> str:
    """A number with three decimals and, if given, its confidence interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if ci is not None and not any(c is None or math.isnan(c) for c in ci):
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


@dataclass(frozen=True)
class Headline:
    """One method's line of the headline table, over its seeds."""

    method: str
    auc: float
    objective: Interval  # the criterion's metric at t: mean and 95% interval
    delta_auc: float  # mean AUC minus the starting model's
    degenerate: bool  # degenerate at t in some seed
    verdict: str

    def cells(self) -> tuple[str, ...]:
        """The table's cells: method, AUC, objective [interval], ΔAUC, verdict."""
        mark = DEGENERATE if self.degenerate else ""
        bounds = (self.objective.low, self.objective.high)
        delta = "n/a" if math.isnan(self.delta_auc) else f"{self.delta_auc:+.3f}"
        return (
            self.method,
            fmt(self.auc),
            fmt(self.objective.mean, bounds) + mark,
            delta,
            self.verdict,
        )


def objective_interval(rows: Sequence[ResultRow], key: str) -> Interval:
    """Metric ``key`` at t over ``rows`` (one method's seeds): the mean and its 95% interval.

    One seed: its test-set bootstrap interval. Several: the wider of Student's t-interval
    over the seeds (how far refits move it) and the seeds' mean bootstrap interval (how far
    a new test set would), so a starting model that no seed changes keeps its test-set
    uncertainty.
    """
    values = [r.metrics_tuned.value(key) for r in rows]
    boots = [r.ci_tuned.of(key) if r.ci_tuned else None for r in rows]
    found = interval(values, boots[0] if len(rows) == 1 else None)
    boots = [b for b in boots if b is not None and not any(math.isnan(v) for v in b)]
    if len(rows) == 1 or not boots:
        return found
    low, high = (sum(b[i] for b in boots) / len(boots) for i in (0, 1))
    return replace(
        found,
        low=low if math.isnan(found.low) else min(found.low, low),
        high=high if math.isnan(found.high) else max(found.high, high),
    )


def verdict(mine: Interval, start: Interval | None, degenerate: bool, key: str) -> str:
    """Fairer or less fair than the start on metric ``key`` only where the two 95% intervals
    do not overlap."""
    if degenerate:
        return NO_EVIDENCE
    if start is None or any(math.isnan(v) for v in (mine.low, mine.high, start.low, start.high)):
        return NO_VERDICT
    lower_is_better = metric(key).lower_is_better is not False
    if mine.high < start.low:
        return FAIRER if lower_is_better else LESS_FAIR
    if mine.low > start.high:
        return LESS_FAIR if lower_is_better else FAIRER
    return UNCHANGED


def headlines(rows: Sequence[ResultRow], criterion: Criterion) -> list[Headline]:
    """Per method, in order of first appearance: its headline line on ``criterion``'s
    metric."""
    key, guard = criterion.key, criterion.guard
    flagged_methods = degenerate_methods(rows, tuned=True)
    methods = list(dict.fromkeys(r.method for r in rows))
    mine = {m: [r for r in rows if r.method == m] for m in methods}
    start = objective_interval(mine[START], key) if START in mine else None
    start_auc = _mean([r.metrics.value(guard) for r in mine.get(START, [])])
    out = []
    for method in methods:
        objective = objective_interval(mine[method], key)
        flagged = method in flagged_methods
        auc = _mean([r.metrics.value(guard) for r in mine[method]])
        is_start = method == START
        out.append(
            Headline(
                method,
                auc,
                objective,
                math.nan if is_start else auc - start_auc,
                flagged,
                "start" if is_start else verdict(objective, start, flagged, key),
            )
        )
    return out


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


HEADERS = ("method", "AUC", "{label} at t\n[95% interval]", "ΔAUC", "verdict")


def headline_headers(criterion: Criterion) -> tuple[str, ...]:
    """The headline table's column headers."""
    return tuple(h.format(label=criterion.label) for h in HEADERS)


def headline_caption(rows: Sequence[ResultRow], criterion: Criterion) -> str:
    """What the headline table's interval, ΔAUC and verdict mean."""
    n_seeds = len({r.seed for r in rows})
    kind = T_OVER_SEEDS if n_seeds > 1 else BOOTSTRAP
    how = (
        f"over {n_seeds} seeds, the wider of Student's t-interval of the mean (how far refits "
        "move it) and the seeds' mean test-set bootstrap interval (how far a new test set would)"
        if kind == T_OVER_SEEDS
        else "the test set's bootstrap interval (one seed)"
    )
    label = criterion.label
    return (
        f"{label} at the threshold t chosen on held-out external data; 95% interval: {how}. "
        f"ΔAUC: the method's AUC minus the starting model's. Verdict: {FAIRER} or {LESS_FAIR} "
        f"only where the {label} intervals of the method and the starting model do not "
        f"overlap, else {UNCHANGED}; {NO_EVIDENCE}: no verdict. "
        f"{degenerate_note(' at t in some seed')}."
    )


def headline_table(
    rows: Sequence[ResultRow], title: str, criterion: Criterion | None = None
) -> Table:
    """Method, AUC, the criterion's metric (default EOdds (mean)) at t with its interval,
    ΔAUC, verdict; one row per method. Its cells are never cut: narrower than its widest
    cell, a column folds."""
    criterion = criterion or Criterion()
    table = Table(title=title, caption=headline_caption(rows, criterion))
    for i, header in enumerate(headline_headers(criterion)):
        table.add_column(header, justify="left" if i in (0, 4) else "right", overflow="fold")
    for line in headlines(rows, criterion):
        table.add_row(*line.cells())
    return table


def natural_width(console: Console, table: Table) -> int:
    """The width ``table`` takes when no cell has to wrap."""
    return Measurement.get(console, console.options.update(width=100_000), table).maximum


def print_whole(console: Console, table: Table) -> None:
    """Print ``table`` with no cell wrapped or cut, wider than ``console`` where it must be."""
    width = natural_width(console, table)
    if width <= console.width:
        console.print(table)
        return
    wider = Console(file=console.file, width=width, quiet=console.quiet, force_terminal=False)
    wider.print(table)


def _width(text: str) -> int:
    return max((len(line) for line in str(text).split("\n")), default=0)


def fold(table: Table, width: int, part: str = "other metrics") -> list[Table]:
    """``table`` split by columns into tables no wider than ``width``, each starting with
    ``table``'s first column; the caption goes under the last. One table if it fits."""
    first, *rest = table.columns
    widths = [max([_width(c.header), *(_width(x) for x in c.cells)]) for c in table.columns]
    room = width - (widths[0] + 4)  # the first column with its padding and both borders
    chunks: list[list[int]] = [[]]
    used = 0
    for i in range(1, len(table.columns)):
        need = widths[i] + 3  # padding and a separator
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(i)
        used += need
    if len(chunks) == 1:
        return [table]
    out = []
    title = str(table.title or "")
    for n, chunk in enumerate(chunks, 1):
        last = n == len(chunks)
        part_title = f"{title}: {part} ({n}/{len(chunks)})" if title else part
        piece = Table(title=part_title, caption=table.caption if last else None)
        for column in (first, *(rest[i - 1] for i in chunk)):
            piece.add_column(
                column.header, justify=column.justify, no_wrap=column.no_wrap, overflow="fold"
            )
        cells = [list(c.cells) for c in (first, *(rest[i - 1] for i in chunk))]
        for values in zip(*cells, strict=True):
            piece.add_row(*values)
        out.append(piece)
    return out
