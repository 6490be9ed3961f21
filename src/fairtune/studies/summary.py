"""The studies' intervals: per point, the mean over seeds of each headline metric and its
95% interval, the one the figure draws and study.json's ``summary`` holds.

With two seeds or more the interval is Student's t-interval of the mean over
the seeds; with one seed it is that seed's percentile bootstrap interval on the
test set (:func:`fairtune.evaluation.metrics.bootstrap_ci`, through
:func:`fairtune.evaluation.evaluate.evaluate_scores`, in each record's ``ci_at_t``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.metrics import Bootstrap


def headline(criterion: Criterion) -> tuple[str, str]:
    """The metrics a study's figure draws (at the chosen threshold t) with their intervals:
    the criterion's gap, then AUC."""
    return criterion.key, "auc"

LEVEL = 1 - Bootstrap.alpha
"""Coverage of every interval: the bootstrap's."""

T_OVER_SEEDS = "t over seeds"
BOOTSTRAP = "bootstrap, one seed"
NO_INTERVAL = "none"


@dataclass(frozen=True)
class Interval:
    """A mean with its :data:`LEVEL` interval ``[low, high]`` over ``n_seeds`` finite values;
    ``kind`` says how the interval was made (NaN bounds with ``kind`` none)."""

    mean: float
    low: float
    high: float
    n_seeds: int
    kind: str


def interval(values: Sequence[float], bootstrap: Sequence[float] | None = None) -> Interval:
    """The mean of the finite ``values`` and its t-interval over them; with one value, the
    ``bootstrap`` interval ``[low, high]`` of that value where given."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    n = len(finite)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, NO_INTERVAL)
    mean = float(finite.mean())
    if n >= 2:
        half = student_t.ppf(0.5 + LEVEL / 2, n - 1) * finite.std(ddof=1) / math.sqrt(n)
        return Interval(mean, mean - half, mean + half, n, T_OVER_SEEDS)
    if bootstrap is not None and not any(b is None or math.isnan(b) for b in bootstrap):
        return Interval(mean, float(bootstrap[0]), float(bootstrap[1]), 1, BOOTSTRAP)
    return Interval(mean, math.nan, math.nan, 1, NO_INTERVAL)


@dataclass(frozen=True)
class PointSummary:
    """One point of a study's figure: ``metric`` at t on test set ``test`` for ``series``
    at ``x`` (``x`` None for the starting model), summarised over the seeds."""

    test: str
    series: str
    x: Any
    metric: str
    interval: Interval
    degenerate: int = 0
    """Seeds whose model is degenerate at t on this test set (some group's positive rate
    below 1% or above 99%, :mod:`fairtune.evaluation.operating`): its small gap is no fairness."""
    unmoved: bool = False
    """Every seed's fitted model is the starting model: no weight moved by more than
    :data:`UNMOVED`."""
    bootstrap_width: float = math.nan
    """The median width of the seeds' test-set bootstrap intervals: how much a new test set
    would move the value (the figure's axes never zoom below it)."""


UNMOVED = 1e-6
"""A fitted model whose every weight is within this of the starting model's did not move."""


def unmoved(records: list[dict[str, Any]]) -> bool:
    """Whether every record was fitted and left the model where it started."""
    changes = [r.get("largest_change") for r in records]
    return bool(records) and all(c is not None and c <= UNMOVED for c in changes)


def _bootstrap_width(cis: Sequence[Any]) -> float:
    widths = [c[1] - c[0] for c in cis if c and None not in c]
    return float(np.median(widths)) if widths else math.nan


def _value(record: dict[str, Any], test: str, metric: str) -> tuple[float, Any, bool]:
    """A record's ``metric`` at t on ``test`` (NaN where its fit failed), its bootstrap
    interval (None where none was drawn) and whether the model is degenerate at t there."""
    if record["failed"]:
        return math.nan, None, False
    measured = record["test"][test]
    value = measured["at_t"][metric]
    ci = measured["ci_at_t"]
    flagged = bool(measured["at_t"]["degenerate"])
    return (math.nan if value is None else float(value)), (ci[metric] if ci else None), flagged


def summarise(records: list[dict[str, Any]], criterion: Criterion) -> list[PointSummary]:
    """Every (test set, series, x, headline metric) of a curve study's records, in order."""
    fitted = [r for r in records if not r["failed"]]
    tests = list(fitted[0]["test"]) if fitted else []
    points = list(dict.fromkeys((r["series"], r["x"]) for r in records))
    out = []
    for test in tests:
        for series, x in points:
            mine = [r for r in records if r["series"] == series and r["x"] == x]
            for metric in headline(criterion):
                values, cis, flags = zip(*(_value(r, test, metric) for r in mine), strict=True)
                found = interval(values, cis[0] if len(mine) == 1 else None)
                still = x is not None and unmoved(mine)  # x None: the start
                width = _bootstrap_width(cis)
                out.append(PointSummary(test, series, x, metric, found, sum(flags), still, width))
    return out
