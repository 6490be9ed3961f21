"""The search: the settings of one comparison, the held-out split, and every setting tried.

Per seed, the external set is split (stratified on group and label) into a
part the fine-tuning sees and a held-out part it never sees. Decision
thresholds and, with a grid, each method's settings are chosen on the
held-out part. A setting whose training diverges is recorded as failed
(:class:`Failure`) and the search goes on.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fairtune.data import SMALL_EXTERNAL, FairData, holdout_split
from fairtune.distributed import world
from fairtune.errors import FairtuneError
from fairtune.evaluation.criterion import (
    DEFAULT_OBJECTIVE,
    OBJECTIVE_HELP,
    OBJECTIVE_NAMES,
    Criterion,
)
from fairtune.evaluation.thresholds import THRESHOLD_RULES, THRESHOLD_WORDS
from fairtune.finetune.feature_cache import FeatureCache
from fairtune.finetune.step_plan import StepPlan, rung_sizes
from fairtune.finetune.training import TrainingDiverged
from fairtune.methods import ALL, DebiasResult, get_method, method_class, method_names
from fairtune.methods.context import FitContext
from fairtune.models import predict_proba
from fairtune.selection.progress import candidate_finished, candidate_started
from fairtune.selection.records import HeldOut, Tried
from fairtune.selection.rules import CrossMethodRule, HeldOutScore, SelectionRule, held_out_score
from fairtune.settings import check as check_settings
from fairtune.settings import declared, distinct, setting


@dataclass
class CompareSettings:
    """How ``compare`` runs, selects and thresholds; saved with every result."""

    methods: list[str] = setting(method_names(ALL), "methods to run (default: all of them)")
    seeds: list[int] = distinct(setting([0], "seeds; with several, tables show mean±std", low=0))
    objective: str = setting(DEFAULT_OBJECTIVE, OBJECTIVE_HELP, choices=OBJECTIVE_NAMES)
    grid: bool = setting(
        False,
        "try each method's grid of key settings and select on held-out external data",
    )
    tuner: str = setting(
        "grid",
        "with --grid: try every grid point, or let optuna's TPE sampler search the grid's "
        "ranges (learning rates on a log scale; extra 'tune')",
        choices=("grid", "optuna"),
    )
    trials: int = setting(12, "optuna trials per method and seed", low=0)
    holdout: float = setting(
        0.3,
        "share of the external set held out for thresholds and selection",
        low=0,
        high=1,
        open_low=True,
        open_high=True,
    )
    auc_tolerance: float = setting(
        0.01,
        "selection keeps settings whose held-out AUC is within this of the starting model's",
        low=0,
        high=1,
    )
    threshold_rule: str = setting(
        "positive_rate",
        "how the second threshold is chosen on held-out external data: keep the starting "
        "model's positive rate, best balanced accuracy, or 0.5",
        choices=THRESHOLD_RULES,
    )
    n_boot: int = setting(200, "bootstrap resamples for intervals on the test set", low=0)
    overrides: dict[str, dict[str, Any]] = setting(
        {}, "method settings to change, per method, e.g. {'bmft': {'keep': 0.25}}"
    )
    grids: dict[str, dict[str, list[Any]]] = setting(
        {},
        "with grid: search these values of a method's setting instead of its grid's, "
        "e.g. {'swift': {'beta': [0.1]}} ('fairtune methods NAME' shows each grid)",
    )
    search: str = setting(
        "grid",
        "grid: fit every setting in full (or optuna's trials); halving: within --budget, every "
        "setting at a share of its epochs, the best third going on at 3x the share, then each "
        "method's best short setting retrained in full (debias --method auto's default)",
        choices=("grid", "halving"),
    )
    budget: float = setting(
        1.0,
        "with halving: rows the fine-tuning may pass, all methods together, as a multiple of "
        "the original training's rows (read from the model's config.json)",
        low=0,
        open_low=True,
    )
    training_rows: int = setting(
        0,
        "rows the original training passed (0: read from the model's config.json; unknown "
        "for a model of your own, whose halving then runs without a budget)",
        low=0,
    )
    jobs: int = setting(
        1,
        "worker processes that fit the methods side by side (one method's settings on one "
        "seed each), each with max(1, torch threads // jobs) threads; the results equal those "
        "of one job run with that many threads",
        low=1,
    )

    def __post_init__(self) -> None:
        check_settings(self, "compare")
        self.methods = method_names(self.methods)
        for method, values in self.overrides.items():
            if method not in self.methods:
                raise FairtuneError(
                    f"settings given for {method}, which is not among the methods compared "
                    f"{self.methods}"
                )
            get_method(method, **values)  # names every unknown setting
        for method, grid in self.grids.items():
            names = method_class(method).config_class.field_names()
            for key, values in grid.items():
                if key not in names:
                    raise FairtuneError(
                        f"{method} has no setting '{key}' to search; "
                        f"see 'fairtune methods {method}'"
                    )
                if not values:
                    raise FairtuneError(f"the grid of {method}.{key} has no values")
        if self.tuner == "optuna" and self.trials < 1:
            raise FairtuneError(f"optuna needs at least one trial, not {self.trials}")
        if self.jobs > 1 and world()[1] > 1:
            raise FairtuneError(
                f"jobs={self.jobs} starts worker processes, which torchrun's processes cannot "
                "share: under torchrun use one job"
            )

    def grid_of(self, method: str) -> dict[str, list[Any]]:
        """The values searched for ``method``: its own grid, with ``grids`` replacing key by key."""
        return {**method_class(method).grid, **self.grids.get(method, {})}

    def tries(self, method: str) -> int:
        """How many settings the search of ``method`` fits: its grid's points, optuna's
        trials, its defaults alone, or, halving, the grid's points over every rung and the
        final rung's one (at most: a budget may end the rungs sooner)."""
        if self.search == "halving":
            points = len(grid_points(self.grid_of(method)))
            return sum(rung_sizes(points)) + 1 if method_class(method).fine_tunes else points
        if not self.grid:
            return 1
        return self.trials if self.tuner == "optuna" else len(grid_points(self.grid_of(method)))

    @property
    def criterion(self) -> Criterion:
        """What every choice of this comparison lowers and what guards it."""
        return Criterion(self.objective, self.auc_tolerance, self.threshold_rule)

    def selection_rule(self) -> SelectionRule:
        """The rule that keeps one setting per method (see :class:`SelectionRule`)."""
        return SelectionRule(self.criterion, self.holdout, self.tuner, self.trials)

    def cross_rule(self) -> CrossMethodRule:
        """The rule that keeps one model across methods (see :class:`CrossMethodRule`)."""
        return CrossMethodRule(self.criterion, self.holdout)

    def method_config(self, method: str, point: dict[str, Any], seed: int) -> dict[str, Any]:
        """The settings ``method`` is fitted with at grid ``point``: the overrides, the point,
        the seed, and the objective's bias loss unless one of those sets it."""
        config = {**self.overrides.get(method, {}), **point, "seed": seed}
        return {"bias_kind": method_class(method).bias_kind_for(self.objective), **config}

    def threshold_text(self) -> str:
        """How the second threshold t is chosen, in words."""
        return THRESHOLD_WORDS[self.threshold_rule]


def fit_and_held(data: FairData, holdout: float, seed: int) -> tuple[FairData, FairData]:
    """:func:`holdout_split` for fitting and choosing, with one warning when the part left to
    fit on is too small to mean much (``--holdout`` near 1)."""
    fit, held = holdout_split(data, holdout, seed)
    cells = {len(np.unique(fit.labels.numpy())), len(np.unique(fit.groups.numpy()))}
    if min(cells) < 2:
        raise FairtuneError(
            f"holdout {holdout:g} leaves {len(fit)} of the {len(data)} external rows to fit "
            "on, too few for both classes in two groups: lower --holdout"
        )
    if len(fit) < SMALL_EXTERNAL <= len(data):  # a set smaller than that is warned of itself
        warnings.warn(
            f"holdout {holdout:g} leaves {len(fit)} of the {len(data)} external rows to fit on: "
            f"fitting on so few is mostly noise (lower the holdout, to keep at least "
            f"{SMALL_EXTERNAL})",
            stacklevel=2,
        )
    return fit, held


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid's values (the defaults alone for an empty grid)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


@dataclass
class Candidate:
    """One fitted setting of a method, with its held-out scores and their verdict."""

    point: dict[str, Any]
    result: DebiasResult
    scores: torch.Tensor  # on the held-out part
    held: HeldOutScore
    cut_short: bool = False  # a halving rung trained it on less than its settings ask


@dataclass
class Failure:
    """A setting whose fit diverged, and the reason in words."""

    point: dict[str, Any]
    reason: str


@dataclass
class MethodSearch:
    """Every setting tried for one method, in the order tried, and the time spent."""

    method: str
    outcomes: list[Candidate | Failure]
    time_s: float = 0.0
    rows: int = 0
    """Rows passed by every fine-tuning phase of the search."""
    rungs: list[dict[str, Any]] = field(default_factory=list)
    """With successive halving: each rung's share of the epochs, settings and rows."""

    @property
    def candidates(self) -> list[Candidate]:
        """The settings whose fit succeeded."""
        return [c for c in self.outcomes if isinstance(c, Candidate)]

    @property
    def failed(self) -> list[Failure]:
        """The settings whose fit diverged."""
        return [f for f in self.outcomes if isinstance(f, Failure)]

    def tried(self, criterion: Criterion) -> list[Tried]:
        """Each setting tried with its held-out AUC and value of the criterion's metric (and
        whether a halving rung cut it short), or with why it failed."""
        return [
            Tried(o.point, failed=o.reason)
            if isinstance(o, Failure)
            else Tried(
                o.point,
                HeldOut(o.held.auc, criterion.key, o.held.of(criterion)),
                cut_short=o.cut_short,
            )
            for o in self.outcomes
        ]


@dataclass
class SearchContext:
    """What every setting tried in one seed shares: the starting model, the data parts, the
    relative importances computed on them (computed once per data and Fisher settings,
    whatever the learning rates, epochs, K or beta) and the backbone features of head-only
    phases (computed once per backbone state and data)."""

    model: nn.Module
    fit: FairData
    held: FairData
    settings: CompareSettings
    seed: int
    reference_rate: float
    head: str | None
    progress: bool
    importances: dict[tuple[Any, ...], dict[str, torch.Tensor]] | None = field(
        default_factory=dict
    )
    """None: every setting computes its own (as before sharing)."""
    features: FeatureCache | None = field(default_factory=FeatureCache)
    """None: every head-only phase computes its own backbone features."""
    targets: dict[tuple[Any, ...], Any] | None = field(default_factory=dict)
    """None: every setting derives its own targets from the starting model's scores."""

    def attempt(
        self, method: str, point: dict[str, Any], plan: StepPlan | None = None
    ) -> Candidate | Failure:
        """Fit ``method`` with ``point`` (its epochs scaled by ``plan``) on the fit part and
        score it on the held-out part; a fit that diverges (NaN or infinite loss or scores)
        is a :class:`Failure`. The run's progress view (:mod:`fairtune.selection.progress`) hears of
        its start and end."""
        candidate_started(method, self.seed, point)
        outcome = self.fitted(method, point, plan)
        if isinstance(outcome, DebiasResult):
            scores = predict_proba(outcome.model, self.held)
            if torch.isfinite(scores).all():
                rule, rate = self.settings.threshold_rule, self.reference_rate
                held = held_out_score(scores, self.held, rule, rate)
                short = plan is not None and plan.share < 1
                outcome = Candidate(point, outcome, scores, held, short)
            else:
                outcome = Failure(point, "held-out scores are NaN: training diverged")
        report_outcome(method, self.seed, outcome)
        return outcome

    def fitted(
        self, method: str, point: dict[str, Any], plan: StepPlan | None = None
    ) -> DebiasResult | Failure:
        """``method`` with ``point`` fitted on the fit part, unscored and untold to the progress
        view: :meth:`attempt`'s fit, and alone a budgeted search's plan at share 0."""
        fitter = get_method(method, **self.settings.method_config(method, point, self.seed))
        shared = FitContext(self.progress, self.importances, self.features, plan, self.targets)
        try:
            return fitter.fit(self.model, self.fit, head=self.head, context=shared)
        except TrainingDiverged as diverged:
            return Failure(point, str(diverged))


def report_outcome(method: str, seed: int, outcome: Candidate | Failure) -> None:
    """Tell the run's progress view that a candidate ended, with its held-out score."""
    if isinstance(outcome, Failure):
        candidate_finished(method, seed, outcome.point, None, outcome.reason)
    else:
        candidate_finished(method, seed, outcome.point, outcome.held)


def search(method: str, context: SearchContext, start_auc: float) -> MethodSearch:
    """Every setting tried for ``method``: its defaults, each grid point, or optuna's trials."""
    settings = context.settings
    begin = time.perf_counter()
    if not settings.grid or settings.tuner == "grid":
        grid = settings.grid_of(method) if settings.grid else {}
        outcomes = [context.attempt(method, point) for point in grid_points(grid)]
    else:
        outcomes = _optuna_search(method, context, start_auc)
    rows = sum(rows_passed(o.result) for o in outcomes if isinstance(o, Candidate))
    return MethodSearch(method, outcomes, time.perf_counter() - begin, rows)


def rows_passed(result: DebiasResult) -> int:
    """Rows a fitted setting passed through its optimiser steps (from its history)."""
    return sum(record.get("rows", 0) for record in result.history)


def _optuna_search(
    method: str, context: SearchContext, start_auc: float
) -> list[Candidate | Failure]:
    """The settings of optuna's trials for ``method``; a failed trial scores infinity."""
    settings = context.settings
    try:
        import optuna
    except ImportError:
        raise FairtuneError("the optuna tuner needs optuna: pip install 'fairtune[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rule = settings.selection_rule()
    outcomes: list[Candidate | Failure] = []

    config_class = method_class(method).config_class

    def objective(trial: optuna.Trial) -> float:
        outcome = context.attempt(method, suggest(trial, settings.grid_of(method), config_class))
        outcomes.append(outcome)
        if isinstance(outcome, Failure):
            return math.inf
        return rule.score(outcome.held, start_auc)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=context.seed))
    study.optimize(objective, n_trials=settings.trials)
    return outcomes


def suggest(trial: Any, grid: dict[str, list[Any]], config_class: type) -> dict[str, Any]:
    """An optuna trial's setting: a setting declared ``log`` (learning rates, FairPrune's
    step) on a log scale between the grid's ends, other settings among the grid's values."""
    point = {}
    for key, values in grid.items():
        numeric = all(isinstance(v, (int, float)) and v > 0 for v in values)
        if numeric and declared(config_class, key).metadata["log"] and len(set(values)) > 1:
            whole = all(isinstance(v, int) for v in values)  # epochs, rounds: stay integers
            suggest = trial.suggest_int if whole else trial.suggest_float
            point[key] = suggest(key, min(values), max(values), log=True)
        else:
            point[key] = trial.suggest_categorical(key, values)
    return point
