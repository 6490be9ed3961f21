"""Successive halving over a method's grid, within a budget of rows.

Every setting of the grid is first planned (fitted with a share of 0: no
epoch runs, but each phase says its full epochs and rows, see
:mod:`fairtune.finetune.step_plan`), then trained at a small share of its epochs and
scored on the held-out part by the per-method selection rule; only the best
1/:data:`~fairtune.finetune.step_plan.ETA` go on, at ETA times the share, until the last rung trains
the survivors in full. With a budget, each rung gets an equal part of the rows
left and its share is cut to fit; a rung that could train no more than the one
before ends the search. The last rung's settings are the method's candidates.

A budget rarely lets a method's last rung train in full, and a setting cut short
may not have recovered the AUC its bias loss costs at first. So a part of the
budget (:data:`FINAL_PART`) is kept for a final rung across methods
(:func:`final_rung`): each method's most promising short setting, in order of
promise, trained in full while the rows left pay for it, beside its short fit.

Why not optuna's pruners (METHODS.md, "Budgeted search"): they stop a running
trial at a reported step, but a setting's model is only a candidate after all
of its phases (SWiFT's head is reset between its steps; BMFT's is
re-initialised), so each rung retrains a shorter run of every phase instead,
and the budget is in rows across all settings, which a pruner does not see.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from fairtune.data import holdout_split
from fairtune.errors import FairtuneError
from fairtune.finetune.step_plan import ETA, StepPlan, rung_sizes
from fairtune.methods import method_class
from fairtune.selection.search import (
    Candidate,
    CompareSettings,
    Failure,
    MethodSearch,
    SearchContext,
    grid_points,
    rows_passed,
    search,
)

SMALLEST = 1e-9
"""A share that trains one epoch of every phase."""

FINAL_PART = 1 / 3
"""The part of the budget left after every method's first rung that is kept for the final
rung across methods (when it pays for one setting in full); the methods share the rest."""

PROMISE_SLACK = 3
"""A short setting is promising when its held-out AUC is within this many times the AUC
tolerance of the starting model's: trained in full it may recover the rest."""

MIN_ROWS = 200
"""The fewest fit rows a rung trains on: below one epoch of every phase a rung trains one
epoch on a stratified part of the fit rows, never fewer than this (or 10% of them)."""


@dataclass(frozen=True)
class GridPlan:
    """A method's grid and what each setting's phases would pass (see :func:`plan_grid`)."""

    points: list[dict[str, Any]]
    plans: list[StepPlan]

    def first_rung(self) -> int:
        """Rows of one epoch of every phase of every setting: the least a first rung passes."""
        return sum(plan.rows_at(SMALLEST) for plan in self.plans)

    def in_full(self) -> int:
        """Rows of every setting trained in full (the grid's cost)."""
        return sum(plan.rows_at(1.0) for plan in self.plans)

    def cheapest(self) -> int:
        """Rows of the cheapest setting trained in full."""
        return min(plan.rows_at(1.0) for plan in self.plans)

    def plan_of(self, point: dict[str, Any]) -> StepPlan:
        """The planned phases of the setting ``point``."""
        return self.plans[self.points.index(point)]


def plan_grid(method: str, context: SearchContext) -> GridPlan | None:
    """Each setting of ``method``'s grid fitted at share 0 (no epoch runs; the relative
    importances and backbone features are computed once, for the search to reuse), so its
    phases are known; None for a method without phases (it runs its grid in full)."""
    if not method_class(method).fine_tunes:
        return None
    points = grid_points(context.settings.grid_of(method))
    plans = [StepPlan(0.0) for _ in points]
    for point, plan in zip(points, plans, strict=True):
        context.fitted(method, point, plan)  # no candidate: unscored, uncounted
    return GridPlan(points, plans)


def least_part(fit_rows: int) -> float:
    """The smallest part of the fit rows a rung trains on (see :data:`MIN_ROWS`)."""
    return min(1.0, max(0.1, MIN_ROWS / max(1, fit_rows)))


def allocate(
    settings: CompareSettings, plans: dict[str, GridPlan | None], fit_rows: int
) -> dict[str, float]:
    """Each method's rows out of the budget: its smallest first rung, then the rest in
    proportion to its grid's cost, less :data:`FINAL_PART` of it when that part pays for
    the cheapest setting in full. Raises when the budget cannot pay the first rungs."""
    total = settings.budget * settings.training_rows
    least = least_part(fit_rows)
    need = {m: p.first_rung() * least for m, p in plans.items() if p is not None}
    if total < sum(need.values()):
        raise FairtuneError(
            f"--budget {settings.budget:g} ({total:,.0f} rows, of the original training's "
            f"{settings.training_rows:,}) is below the first rung of the search "
            f"({sum(need.values()):,.0f} rows: one epoch of every phase of every setting on "
            f"{least:.0%} of the fit rows); "
            "raise --budget, or search fewer methods"
        )
    full = {m: p.in_full() for m, p in plans.items() if p is not None}
    spare = total - sum(need.values())
    cheapest = min((p.cheapest() for p in plans.values() if p is not None), default=0)
    if cheapest <= spare * FINAL_PART:  # else the final rung could not train one setting
        spare *= 1 - FINAL_PART
    return {m: need[m] + spare * full[m] / max(1, sum(full.values())) for m in need}


def halving_search(
    method: str,
    context: SearchContext,
    start_auc: float,
    budget_rows: float | None,
    plan: GridPlan | None = None,
) -> MethodSearch:
    """The settings of ``method``'s grid that survive successive halving, trained at the
    last rung's share, within ``budget_rows`` (None: no budget, the last rung in full).
    ``plan`` is the grid's :func:`plan_grid`, made here when not given."""
    begin = time.perf_counter()
    plan = plan or plan_grid(method, context)
    if plan is None:
        found = search(method, replace(context, settings=_as_grid(context.settings)), start_auc)
        return replace(found, time_s=time.perf_counter() - begin)
    points, plans = plan.points, plan.plans
    alive = list(range(len(points)))
    failed: list[Candidate | Failure] = []
    final: list[Candidate | Failure] = []
    rungs: list[dict[str, Any]] = []
    spent, effort = 0, 0.0
    counts = rung_sizes(len(alive))
    for k, count in enumerate(counts):
        alive = alive[:count]
        planned_share = float(ETA ** (k + 1 - len(counts)))
        fits = _fitting_share(
            plans,
            alive,
            planned_share,
            budget_rows - spent if budget_rows else None,
            len(counts) - k,
            least_part(len(context.fit)),
        )
        if fits is None or fits[2] <= effort:
            break  # the budget cannot train these settings more than the rung before
        share, part, effort = fits
        here = context
        if part < 1:  # one epoch of every phase on a stratified part of the fit rows
            here = replace(context, fit=holdout_split(context.fit, part, context.seed)[1])
        tried = {i: here.attempt(method, points[i], StepPlan(share)) for i in alive}
        rows = sum(_rows(o, plans[i], share) for i, o in tried.items())
        spent += rows
        final = list(tried.values())
        failed += [o for o in final if isinstance(o, Failure)]
        alive = sorted(alive, key=lambda i: _rank(context, tried[i], start_auc))
        rungs.append(_rung(share, part, [points[i] for i in tried], rows))
    outcomes = [o for o in final if isinstance(o, Candidate)] + failed
    return MethodSearch(method, outcomes, time.perf_counter() - begin, spent, rungs)


def _rung(
    share: float, part: float, settings: list[dict[str, Any]], rows: int, final: bool = False
) -> dict[str, Any]:
    """A rung as reports and debias.json hold it (``final``: the final rung across methods)."""
    return {"share": share, "part": part, "settings": settings, "rows": rows, "final": final}


def _in_full(rung: dict[str, Any]) -> bool:
    return rung["share"] >= 1 and rung["part"] >= 1


def final_rung(
    context: SearchContext, prepared: Prepared, searches: list[MethodSearch], start_auc: float
) -> list[MethodSearch]:
    """``searches`` after the final rung across methods.

    A method whose last rung was cut short offers its most promising setting there: the
    best by the per-method rule's score (held-out AUC within the tolerance first, then the
    lower value of the criterion's metric) among its sound settings whose held-out AUC is
    within :data:`PROMISE_SLACK` tolerances of the starting model's. Best first, each
    offer is trained in full on every fit row while the budget's rows left pay for it (an
    offer that does not fit is passed over) and joins its method's candidates beside its
    short fit. Without a budget every last rung already trains in full.
    """
    settings = context.settings
    if not settings.training_rows:
        return searches
    left = settings.budget * settings.training_rows - sum(s.rows for s in searches)
    floor = start_auc - PROMISE_SLACK * settings.criterion.tolerance
    rule = settings.selection_rule()

    def promise(candidate: Candidate) -> float:
        return rule.score(candidate.held, start_auc)

    offers = []
    for found in searches:
        plan = prepared.plans.get(found.method)
        if plan is None or not found.rungs or _in_full(found.rungs[-1]):
            continue
        short = [
            c for c in found.candidates if not c.held.degenerate and c.held.auc >= floor
        ]
        if short:
            offers.append((found, min(short, key=promise), plan))
    after = {}
    for found, offer, plan in sorted(offers, key=lambda o: promise(o[1])):
        planned = plan.plan_of(offer.point)
        if planned.rows_at(1.0) > left:
            continue
        begin = time.perf_counter()
        outcome = context.attempt(found.method, offer.point, StepPlan(1.0))
        rows = _rows(outcome, planned, 1.0)
        left -= rows
        after[found.method] = replace(
            found,
            outcomes=[*found.outcomes, outcome],
            time_s=found.time_s + time.perf_counter() - begin,
            rows=found.rows + rows,
            rungs=[*found.rungs, _rung(1.0, 1.0, [offer.point], rows, final=True)],
        )
    return [after.get(s.method, s) for s in searches]


def _as_grid(settings: CompareSettings) -> CompareSettings:
    """The same settings searching the grid in full."""
    return replace(settings, search="grid", grid=True, tuner="grid")


def _fitting_share(
    plans: list[StepPlan],
    alive: list[int],
    planned: float,
    left: float | None,
    rungs_left: int,
    least: float,
) -> tuple[float, float, float] | None:
    """(share of the epochs, part of the fit rows, rows per setting) for this rung: the
    largest share up to ``planned`` whose rows fit its part of the budget ``left``; below
    one epoch of every phase, that epoch on a part of the rows (at least ``least``; a first
    rung may take all that is left). None: not even that fits."""

    def cost(share: float) -> int:
        return sum(plans[i].rows_at(share) for i in alive)

    if left is None:
        return planned, 1.0, cost(planned) / len(alive)
    one_epoch = cost(SMALLEST)
    if one_epoch * least > left:
        return None
    part = max(left / rungs_left, one_epoch * least)
    if one_epoch > part:
        rows = part / one_epoch
        return SMALLEST, rows, one_epoch * rows / len(alive)
    if cost(planned) <= part:
        return planned, 1.0, cost(planned) / len(alive)
    low, high = SMALLEST, planned
    for _ in range(40):  # bisection: the cost grows with the share
        mid = (low + high) / 2
        low, high = (mid, high) if cost(mid) <= part else (low, mid)
    return low, 1.0, cost(low) / len(alive)


def _rows(outcome: Candidate | Failure, plan: StepPlan, share: float) -> int:
    """Rows a fit passed: from its history, or as planned when it diverged."""
    return rows_passed(outcome.result) if isinstance(outcome, Candidate) else plan.rows_at(share)


def _rank(context: SearchContext, outcome: Candidate | Failure, start_auc: float) -> tuple:
    """Order of promotion: sound before degenerate before failed, then the per-method rule."""
    if isinstance(outcome, Failure):
        return (2, math.inf)
    score = context.settings.selection_rule().score(outcome.held, start_auc)
    return (int(outcome.held.degenerate), score)


@dataclass(frozen=True)
class Prepared:
    """A seed's halving before any training: each method's planned grid and its rows."""

    plans: dict[str, GridPlan | None]
    budgets: dict[str, float]
    """Rows each method may pass; empty without a budget."""


def prepare(context: SearchContext) -> Prepared:
    """Plan every method's grid and share the budget among them (see :func:`allocate`);
    without the original training's rows, no budget."""
    settings = context.settings
    plans = {m: plan_grid(m, context) for m in settings.methods}
    budgets = allocate(settings, plans, len(context.fit)) if settings.training_rows else {}
    return Prepared(plans, budgets)


def original_training_rows(history: list[dict[str, Any]]) -> int:
    """Rows the model's original training passed, from its config.json history (its
    ``train`` phase's epochs); 0 when the history does not say."""
    train = [record for record in history if record.get("phase") == "train"]
    if not train or any("rows" not in record for record in train):
        return 0
    return sum(int(record["rows"]) for record in train)


def halving_text(settings: CompareSettings) -> str:
    """The search in one sentence, as reports print it."""
    budget = (
        f"within {settings.budget:g}x the original training's rows ({settings.training_rows:,}; "
        "each method its first rung, the rest in proportion to its grid's cost)"
        if settings.training_rows
        else "without a budget (the original training's rows are unknown)"
    )
    return (
        f"successive halving over each method's grid {budget}: every setting trained at a "
        f"share of its epochs and scored by the per-method rule on the held-out "
        f"{settings.holdout:.0%}, the best 1/{ETA} going on at {ETA} times the share, the last "
        "rung in full unless the budget cuts it; then, with the rows kept for it, each "
        "method's most promising setting cut short trained in full, best first"
    )
