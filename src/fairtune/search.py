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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fairtune.data import FairData
from fairtune.distributed import world
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_scores
from fairtune.feature_cache import FeatureCache
from fairtune.methods import ALL, DebiasResult, get_method, method_class, method_names
from fairtune.models import predict_proba
from fairtune.operating import degenerate
from fairtune.progress import candidate_finished, candidate_started
from fairtune.selection import CrossMethodRule, HeldOutScore, SelectionRule
from fairtune.settings import check as check_settings
from fairtune.settings import setting
from fairtune.thresholds import THRESHOLD_RULES, choose_threshold
from fairtune.training import TrainingDiverged


@dataclass
class CompareSettings:
    """How ``compare`` runs, selects and thresholds; saved with every result."""

    methods: list[str] = setting(method_names(ALL), "methods to run (default: all of them)")
    seeds: list[int] = setting([0], "seeds; with several, tables show mean±std", low=0)
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
        trials, or its defaults alone."""
        if not self.grid:
            return 1
        return self.trials if self.tuner == "optuna" else len(grid_points(self.grid_of(method)))

    def selection_rule(self) -> SelectionRule:
        """The rule that keeps one setting per method (see :class:`SelectionRule`)."""
        return SelectionRule(self.auc_tolerance, self.holdout, self.tuner, self.trials)

    def cross_rule(self) -> CrossMethodRule:
        """The rule that keeps one model across methods (see :class:`CrossMethodRule`)."""
        return CrossMethodRule(self.auc_tolerance, self.holdout)

    def threshold_text(self) -> str:
        """How the second threshold t is chosen, in words."""
        return {
            "0.5": "0.5",
            "balanced_accuracy": "the best balanced accuracy on the held-out external part",
            "positive_rate": "the starting model's positive rate (at 0.5) on the held-out "
            "external part",
        }[self.threshold_rule]


def holdout_split(data: FairData, share: float, seed: int) -> tuple[FairData, FairData]:
    """Split rows into (fit, held-out), ``share`` of every (group, label) cell held out."""
    rng = np.random.default_rng(seed)
    cells = data.groups.numpy() * 2 + data.labels.numpy().astype(np.int64)
    held = []
    for cell in np.unique(cells):
        rows = rng.permutation(np.flatnonzero(cells == cell))
        held.append(rows[: round(share * len(rows))])
    held_rows = np.sort(np.concatenate(held))
    fit_rows = np.setdiff1d(np.arange(len(data)), held_rows)
    return data.subset(fit_rows), data.subset(held_rows)


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

    @property
    def candidates(self) -> list[Candidate]:
        """The settings whose fit succeeded."""
        return [c for c in self.outcomes if isinstance(c, Candidate)]

    @property
    def failed(self) -> list[Failure]:
        """The settings whose fit diverged."""
        return [f for f in self.outcomes if isinstance(f, Failure)]

    def tried(self) -> list[dict[str, Any]]:
        """Each setting tried with its held-out AUC and EOdds, or with why it failed."""
        return [
            {"setting": o.point, "failed": o.reason}
            if isinstance(o, Failure)
            else {
                "setting": o.point,
                "held_out_auc": o.held.auc,
                "held_out_eodds_mean": o.held.eodds_mean,
            }
            for o in self.outcomes
        ]


def held_out_score(
    scores: torch.Tensor, held: FairData, rule: str, reference_rate: float
) -> HeldOutScore:
    """Threshold chosen by ``rule`` on a model's held-out ``scores``; AUC, EOdds and whether
    the decisions are degenerate there."""
    threshold = choose_threshold(held.labels.numpy(), scores.numpy(), rule, reference_rate)
    metrics = evaluate_scores(held, scores, threshold)[0]
    flag = degenerate(scores.numpy(), held.groups.numpy(), held.group_names, threshold)
    return HeldOutScore(threshold, metrics["auc"], metrics["eodds_mean"], flag.flagged)


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

    def attempt(self, method: str, point: dict[str, Any]) -> Candidate | Failure:
        """Fit ``method`` with ``point`` on the fit part and score it on the held-out part;
        a fit that diverges (NaN or infinite loss or scores) is a :class:`Failure`. The
        run's progress view (:mod:`fairtune.progress`) hears of its start and end."""
        candidate_started(method, self.seed, point)
        outcome = self._attempt(method, point)
        report_outcome(method, self.seed, outcome)
        return outcome

    def _attempt(self, method: str, point: dict[str, Any]) -> Candidate | Failure:
        config = {**self.settings.overrides.get(method, {}), **point, "seed": self.seed}
        fitter = get_method(method, **config)
        fitter.importance_cache = self.importances
        fitter.feature_cache = self.features
        try:
            result = fitter.fit(self.model, self.fit, head=self.head, progress=self.progress)
        except TrainingDiverged as diverged:
            return Failure(point, str(diverged))
        scores = predict_proba(result.model, self.held)
        if not torch.isfinite(scores).all():
            return Failure(point, "the fitted model's held-out scores are NaN: training diverged")
        held = held_out_score(scores, self.held, self.settings.threshold_rule, self.reference_rate)
        return Candidate(point, result, scores, held)


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
    return MethodSearch(method, outcomes, time.perf_counter() - begin)


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

    def objective(trial: optuna.Trial) -> float:
        outcome = context.attempt(method, suggest(trial, settings.grid_of(method)))
        outcomes.append(outcome)
        if isinstance(outcome, Failure):
            return math.inf
        return rule.score(outcome.held, start_auc)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=context.seed))
    study.optimize(objective, n_trials=settings.trials)
    return outcomes


def suggest(trial: Any, grid: dict[str, list[Any]]) -> dict[str, Any]:
    """An optuna trial's setting: learning-rate-like ranges (over a decade) on a log scale
    between the grid's ends, other settings among the grid's values."""
    point = {}
    for key, values in grid.items():
        numeric = all(isinstance(v, (int, float)) and v > 0 for v in values)
        if numeric and max(values) >= 10 * min(values):
            whole = all(isinstance(v, int) for v in values)  # epochs, rounds: stay integers
            suggest = trial.suggest_int if whole else trial.suggest_float
            point[key] = suggest(key, min(values), max(values), log=True)
        else:
            point[key] = trial.suggest_categorical(key, values)
    return point
