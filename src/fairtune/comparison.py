"""Comparison: every method from the same starting model, on the same data, measured alike.

Per seed, the external set is split (stratified on group and label) into a
part the fine-tuning sees and a held-out part it never sees. Decision
thresholds and, with a grid, each method's settings are chosen on the held-out
part; the test set only measures.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_scores
from fairtune.methods import REGISTRY, get_method
from fairtune.models import predict_proba
from fairtune.results import ResultRow
from fairtune.selection import HeldOutScore, SelectionRule
from fairtune.settings import check as check_settings
from fairtune.settings import setting
from fairtune.thresholds import THRESHOLD_RULES, choose_threshold


@dataclass
class CompareSettings:
    """How ``compare`` runs, selects and thresholds; saved with every result."""

    methods: list[str] = setting(sorted(REGISTRY), "methods to run (default: all of them)")
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

    def __post_init__(self) -> None:
        check_settings(self, "compare")
        unknown = [m for m in self.methods if m not in REGISTRY]
        if unknown:
            raise FairtuneError(f"unknown method(s) {unknown}; choose from {sorted(REGISTRY)}")
        for method, values in self.overrides.items():
            if method not in self.methods:
                raise FairtuneError(
                    f"settings given for {method}, which is not among the methods compared "
                    f"{self.methods}"
                )
            get_method(method, **values)  # names every unknown setting
        for method, grid in self.grids.items():
            if method not in REGISTRY:
                raise FairtuneError(f"grid for unknown method '{method}'")
            names = REGISTRY[method].config_class.field_names()
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

    def grid_of(self, method: str) -> dict[str, list[Any]]:
        """The values searched for ``method``: its own grid, with ``grids`` replacing key by key."""
        return {**REGISTRY[method].grid, **self.grids.get(method, {})}

    def selection_rule(self) -> SelectionRule:
        """The rule that keeps one setting per method (see :class:`SelectionRule`)."""
        return SelectionRule(self.auc_tolerance, self.holdout, self.tuner, self.trials)

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
    """One fitted setting of a method, scored on the held-out part."""

    point: dict[str, Any]
    model: nn.Module
    config: dict[str, Any]
    wall_time_s: float
    held: HeldOutScore


def held_out_score(
    scores: torch.Tensor, held: FairData, rule: str, reference_rate: float
) -> HeldOutScore:
    """Threshold chosen by ``rule`` on a model's held-out ``scores``, and AUC and EOdds there."""
    threshold = choose_threshold(held.labels.numpy(), scores.numpy(), rule, reference_rate)
    metrics = evaluate_scores(held, scores, threshold)[0]
    return HeldOutScore(threshold, metrics["auc"], metrics["eodds_mean"])


@dataclass
class SearchContext:
    """What every setting tried in one seed shares: the starting model and the data parts."""

    model: nn.Module
    fit: FairData
    held: FairData
    settings: CompareSettings
    seed: int
    reference_rate: float
    head: str | None
    progress: bool

    def attempt(self, method: str, point: dict[str, Any]) -> Candidate:
        """Fit ``method`` with ``point`` on the fit part; score it on the held-out part."""
        config = {**self.settings.overrides.get(method, {}), **point, "seed": self.seed}
        result = get_method(method, **config).fit(
            self.model, self.fit, head=self.head, progress=self.progress
        )
        scores = predict_proba(result.model, self.held)
        held = held_out_score(scores, self.held, self.settings.threshold_rule, self.reference_rate)
        return Candidate(point, result.model, result.config, result.wall_time_s, held)


def search(method: str, context: SearchContext, start_auc: float) -> list[Candidate]:
    """Every setting tried for ``method``: its defaults, each grid point, or optuna's trials."""
    settings = context.settings
    if not settings.grid or settings.tuner == "grid":
        grid = settings.grid_of(method) if settings.grid else {}
        return [context.attempt(method, point) for point in grid_points(grid)]
    try:
        import optuna
    except ImportError:
        raise FairtuneError("the optuna tuner needs optuna: pip install 'fairtune[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rule = settings.selection_rule()
    candidates: list[Candidate] = []

    def objective(trial: optuna.Trial) -> float:
        candidate = context.attempt(method, suggest(trial, settings.grid_of(method)))
        candidates.append(candidate)
        return rule.score(candidate.held, start_auc)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=context.seed))
    study.optimize(objective, n_trials=settings.trials)
    return candidates


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


def compare(
    model: nn.Module,
    external: FairData,
    test: FairData,
    settings: CompareSettings | None = None,
    head: str | None = None,
    progress: bool = False,
) -> list[ResultRow]:
    """Run every method from ``model``; one result row per (method, seed), baseline first."""
    settings = settings or CompareSettings()
    check_groups(external)
    check_groups(test)
    if external.group_names != test.group_names:
        raise FairtuneError(
            f"external groups {external.group_names} differ from test groups {test.group_names}"
        )
    rule = settings.selection_rule()
    rows = []
    for seed in settings.seeds:
        fit, held = holdout_split(external, settings.holdout, seed)
        start_scores = predict_proba(model, held)
        reference_rate = float((start_scores >= 0.5).float().mean())

        start = held_out_score(start_scores, held, settings.threshold_rule, reference_rate)
        baseline = Candidate({}, model, {}, 0.0, start)
        selection = {"held_out_auc": start.auc, "held_out_eodds_mean": start.eodds_mean}
        rows.append(_row("baseline", seed, baseline, selection, test, settings))
        context = SearchContext(model, fit, held, settings, seed, reference_rate, head, progress)
        for name in settings.methods:
            begin = time.perf_counter()
            candidates = search(name, context, start.auc)
            spent = time.perf_counter() - begin
            best = candidates[rule.choose([c.held for c in candidates], start.auc)]
            selection = {
                "rule": rule.text() if settings.grid else "defaults (no search)",
                "chosen": best.point,
                "tried": [
                    {
                        "setting": c.point,
                        "held_out_auc": c.held.auc,
                        "held_out_eodds_mean": c.held.eodds_mean,
                    }
                    for c in candidates
                ],
                "held_out_auc": best.held.auc,
                "held_out_eodds_mean": best.held.eodds_mean,
                "search_time_s": spent,
            }
            rows.append(_row(name, seed, best, selection, test, settings))
    return rows


def _row(
    method: str,
    seed: int,
    chosen: Candidate,
    selection: dict[str, Any],
    test: FairData,
    settings: CompareSettings,
) -> ResultRow:
    """One results row: test metrics at 0.5 and at the chosen threshold, with intervals."""
    scores = predict_proba(chosen.model, test)
    threshold = chosen.held.threshold
    metrics, ci = evaluate_scores(test, scores, 0.5, settings.n_boot, seed)
    tuned, ci_tuned = evaluate_scores(test, scores, threshold, settings.n_boot, seed)
    return ResultRow(
        method=method,
        seed=seed,
        config=chosen.config,
        wall_time_s=chosen.wall_time_s,
        threshold=threshold,
        threshold_rule=settings.threshold_rule,
        metrics=metrics,
        metrics_tuned=tuned,
        ci=ci,
        ci_tuned=ci_tuned,
        selection=selection,
    )
