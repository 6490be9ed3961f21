"""The studies in the terminal: each point's mean and 95% interval, as study.json holds them;
for ``mask``, the overall mask statistics over the seeds."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from fairtune.evaluation.criterion import metric
from fairtune.reporting.report import DEGENERATE, degenerate_note
from fairtune.studies.summary import LEVEL, UNMOVED, Interval, PointSummary, interval


def _label(key: str) -> str:
    """A headline metric's column: its declared label, 'at t' where the threshold matters."""
    declared = metric(key)
    return declared.label + (" at t" if declared.threshold_dependent else "")


def _cell(found: Interval) -> str:
    """``mean [low, high]``, or the mean alone where there is no interval."""
    if found.n_seeds == 0:
        return "failed"
    if math.isnan(found.low):
        return f"{found.mean:.3f}"
    return f"{found.mean:.3f} [{found.low:.3f}, {found.high:.3f}]"


UNMOVED_MARK = "(did not move)"
"""Marks a point whose fine-tuning left every seed's model where it started."""


def unmoved_note(points: list[PointSummary]) -> str:
    """Which points did not move the model, in words ('' where every point moved)."""
    still = list(dict.fromkeys((p.series, p.x) for p in points if p.unmoved))
    if not still:
        return ""
    names = ", ".join(f"{series} at {x}" for series, x in still)
    return (
        f"\n{UNMOVED_MARK}: {len(still)} point(s) where the fine-tuning did not move the model "
        f"(every weight within {UNMOVED:g} of the start on every seed), so their values are "
        f"the starting model's: {names}"
    )


def summary_tables(points: list[PointSummary]) -> list[Table]:
    """One table per test set: a row per (series, x), a column per headline metric (the
    objective's gap first)."""
    tables = []
    headline = list(dict.fromkeys(p.metric for p in points))
    for test in dict.fromkeys(p.test for p in points):
        mine = [p for p in points if p.test == test]
        table = Table(
            title=f"test set '{test}': mean and {LEVEL:.0%} interval",
            caption="interval: t over seeds; with one seed, the test-set bootstrap. "
            + degenerate_note(" (in the seeds counted)")
            + unmoved_note(mine),
        )
        for column in ("series", "x", "seeds", *(_label(m) for m in headline)):
            table.add_column(column)
        for series, x in dict.fromkeys((p.series, p.x) for p in mine):
            cells = {p.metric: p.interval for p in mine if (p.series, p.x) == (series, x)}
            seeds = str(max(c.n_seeds for c in cells.values()))
            flagged = max(p.degenerate for p in mine if (p.series, p.x) == (series, x))
            marked = {m: _cell(cells[m]) for m in headline}
            if flagged:
                marked[headline[0]] += f" {DEGENERATE} {flagged}/{seeds}"
            if any(p.unmoved for p in mine if (p.series, p.x) == (series, x)):
                marked[headline[0]] += f" {UNMOVED_MARK}"
            table.add_row(series, str(x), seeds, *(marked[m] for m in headline))
        tables.append(table)
    return tables


def mask_table(records: list[dict[str, Any]]) -> Table:
    """The ``mask`` study's statistics over all weights: mean and t-interval over seeds."""
    table = Table(title=f"masks over all weights: mean and {LEVEL:.0%} t-interval over seeds")
    table.add_column("statistic")
    table.add_column("value")
    for key in records[0]["overall"]:
        table.add_row(key, _cell(interval([r["overall"][key] for r in records])))
    return table
