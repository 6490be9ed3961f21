"""Successive halving over a method's grid, within a budget of rows.

Every setting of the grid is first planned (fitted with a share of 0: no
epoch runs, but each phase says its full epochs and rows, see
:mod:`fairtune.step_plan`), then trained at a small share of its epochs and
scored on the held-out part by the per-method selection rule; only the best
1/:data:`ETA` go on, at :data:`ETA` times the share, until the last rung trains
the survivors in full. With a budget, each rung gets an equal part of the rows
left and its share is cut to fit; a rung that could train no more than the one
before ends the search. The last rung's settings are the method's candidates.

Why not optuna's pruners (METHODS.md, "Budgeted search"): they stop a running
trial at a reported step, but a setting's model is only a candidate after all
of its phases (SWiFT's head is reset between its steps; BMFT's is
re-initialised), so each rung retrains a shorter run of every phase instead,
and the budget is in rows across all settings, which a pruner does not see.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fairtune.errors import FairtuneError
from fairtune.search import (
    Candidate,
    CompareSettings,
    Failure,
    MethodSearch,
    SearchContext,
    grid_points,
    rows_passed,
)
from fairtune.step_plan import StepPlan

ETA = 3
"""Each rung keeps the best 1/ETA of its settings and gives them ETA times the share."""


def halving_search(
    method: str, context: SearchContext, start_auc: float, budget_rows: float | None
) -> MethodSearch:
    """The settings of ``method``'s grid that survive successive halving, trained at the
    last rung's share, within ``budget_rows`` (None: no budget, the last rung in full)."""
    begin = time.perf_counter()
    points = grid_points(context.settings.grid_of(method))
    plans = [StepPlan(0.0) for _ in points]
    planned = [context.attempt(method, p, plan) for p, plan in zip(points, plans, strict=True)]
    fixed = [o for o, plan in zip(planned, plans, strict=True) if not plan.phases]  # in full
    alive = [i for i in range(len(points)) if plans[i].phases]
    failed: list[Candidate | Failure] = []
    final: list[Candidate | Failure] = []
    rungs: list[dict[str, Any]] = []
    spent, share = 0, 0.0
    counts = _counts(len(alive))
    for k, count in enumerate(counts):
        alive = alive[:count]
        planned_share = float(ETA ** (k + 1 - len(counts)))
        fits = _fitting_share(plans, alive, planned_share, budget_rows, spent, len(counts) - k)
        if fits is None and k == 0:
            raise FairtuneError(_too_small(context.settings, method, plans, alive, budget_rows))
        if fits is None or fits <= share:
            break  # the budget cannot train these settings more than the rung before
        share = fits
        tried = {i: context.attempt(method, points[i], StepPlan(share)) for i in alive}
        rows = sum(_rows(o, plans[i], share) for i, o in tried.items())
        spent += rows
        final = list(tried.values())
        failed += [o for o in final if isinstance(o, Failure)]
        alive = sorted(alive, key=lambda i: _rank(context, tried[i], start_auc))
        rungs.append({"share": share, "settings": [points[i] for i in tried], "rows": rows})
    outcomes = (
        [o for o in fixed + final if isinstance(o, Candidate)]
        + [o for o in fixed if isinstance(o, Failure)]
        + failed
    )
    return MethodSearch(method, outcomes, time.perf_counter() - begin, spent, rungs)


def _counts(n: int) -> list[int]:
    """Settings per rung: n, then 1/ETA of the one before, down to fewer than ETA."""
    counts = [n]
    while counts[-1] >= ETA:
        counts.append(math.ceil(counts[-1] / ETA))
    return counts if n else []


def _fitting_share(
    plans: list[StepPlan],
    alive: list[int],
    planned: float,
    budget_rows: float | None,
    spent: int,
    rungs_left: int,
) -> float | None:
    """The largest share up to ``planned`` whose rows for ``alive`` fit this rung's part of
    the budget left (all of it for a first rung that needs more); None: not even one
    epoch of each phase fits."""
    if budget_rows is None:
        return planned
    left = budget_rows - spent

    def cost(share: float) -> int:
        return sum(plans[i].rows_at(share) for i in alive)

    smallest = 1e-9  # one epoch of every phase
    if cost(smallest) > left:
        return None
    part = max(left / rungs_left, cost(smallest))
    if cost(planned) <= part:
        return planned
    low, high = smallest, planned
    for _ in range(40):  # bisection: the cost grows with the share
        mid = (low + high) / 2
        low, high = (mid, high) if cost(mid) <= part else (low, mid)
    return low


def _rows(outcome: Candidate | Failure, plan: StepPlan, share: float) -> int:
    """Rows a fit passed: from its history, or as planned when it diverged."""
    return rows_passed(outcome.result) if isinstance(outcome, Candidate) else plan.rows_at(share)


def _rank(context: SearchContext, outcome: Candidate | Failure, start_auc: float) -> tuple:
    """Order of promotion: sound before degenerate before failed, then the per-method rule."""
    if isinstance(outcome, Failure):
        return (2, math.inf)
    score = context.settings.selection_rule().score(outcome.held, start_auc)
    return (int(outcome.held.degenerate), score)


def _too_small(
    settings: CompareSettings,
    method: str,
    plans: list[StepPlan],
    alive: list[int],
    budget_rows: float | None,
) -> str:
    need = sum(plans[i].rows_at(1e-9) for i in alive)
    return (
        f"--budget {settings.budget:g} gives {method} {budget_rows:,.0f} rows, fewer than its "
        f"first rung needs ({need:,} rows: one epoch of every phase of its {len(alive)} "
        "settings); raise --budget or narrow the methods"
    )


def method_budget(settings: CompareSettings) -> float | None:
    """Rows each method's halving may pass: the budget's rows shared equally among the
    methods (None: the original training's rows are unknown, no budget)."""
    if settings.training_rows == 0:
        return None
    return settings.budget * settings.training_rows / len(settings.methods)


def halving_text(settings: CompareSettings) -> str:
    """The search in one sentence, as reports print it."""
    budget = (
        f"within {settings.budget:g}x the original training's rows ({settings.training_rows:,}), "
        "shared equally among the methods"
        if settings.training_rows
        else "without a budget (the original training's rows are unknown)"
    )
    return (
        f"successive halving over each method's grid {budget}: every setting trained at a "
        f"share of its epochs and scored by the per-method rule on the held-out "
        f"{settings.holdout:.0%}, the best 1/{ETA} going on at {ETA} times the share, the last "
        "rung in full unless the budget cuts it"
    )
