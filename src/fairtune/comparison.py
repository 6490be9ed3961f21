"""Comparison: every method from the same starting model, on the same data, measured alike.

Per seed, the external set is split (stratified on group and label) into a
part the fine-tuning sees and a held-out part it never sees. Decision
thresholds and, with a grid, each method's settings are chosen on the held-out
part; the test set only measures.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fairtune.data import FairData, check_groups
from fairtune.errors import FairtuneError
from fairtune.evaluation import evaluate_scores
from fairtune.methods import REGISTRY, get_method
from fairtune.metrics import THRESHOLD_RULES, choose_threshold
from fairtune.models import predict_proba


@dataclass
class CompareSettings:
    """How ``compare`` runs, selects and thresholds; saved with every result."""

    methods: list[str] = field(default_factory=lambda: sorted(REGISTRY))
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: bool = False
    tuner: str = "grid"
    trials: int = 12
    holdout: float = 0.3
    auc_tolerance: float = 0.01
    threshold_rule: str = "positive_rate"
    n_boot: int = 200
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        if self.threshold_rule not in THRESHOLD_RULES:
            raise FairtuneError(
                f"threshold rule '{self.threshold_rule}' is not one of {list(THRESHOLD_RULES)}"
            )
        if self.tuner not in ("grid", "optuna"):
            raise FairtuneError(f"tuner must be 'grid' or 'optuna', not '{self.tuner}'")
        if self.tuner == "optuna" and self.trials < 1:
            raise FairtuneError(f"optuna needs at least one trial, not {self.trials}")
        if not 0 < self.holdout < 1:
            raise FairtuneError(f"holdout share must lie in (0, 1), not {self.holdout}")

    def grid_of(self, method: str) -> dict[str, list[Any]]:
        """The values searched for ``method``: its own grid, with ``grids`` replacing key by key."""
        return {**REGISTRY[method].grid, **self.grids.get(method, {})}

    def selection_rule(self) -> str:
        tried = (
            "grid setting" if self.tuner == "grid" else f"setting of {self.trials} optuna trials"
        )
        return (
            f"per method, the {tried} with the lowest EOdds (mean) on the held-out "
            f"{self.holdout:.0%} of the external set, at the threshold chosen there, among those "
            f"whose held-out AUC is at least the starting model's minus {self.auc_tolerance}; "
            "if none qualifies, the best held-out AUC"
        )

    def threshold_text(self) -> str:
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
    """One fitted setting of a method, judged on the held-out part."""

    point: dict[str, Any]
    model: nn.Module
    result: Any
    threshold: float
    held_auc: float
    held_eodds: float


def select(candidates: list[Candidate], start_auc: float, tolerance: float) -> Candidate:
    """Apply the selection rule of :meth:`CompareSettings.selection_rule`."""
    ok = [c for c in candidates if c.held_auc >= start_auc - tolerance]
    if ok:
        return min(ok, key=lambda c: (_nan_high(c.held_eodds), -c.held_auc))
    return max(candidates, key=lambda c: _nan_low(c.held_auc))


def _nan_high(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def judge(
    scores: torch.Tensor, held: FairData, rule: str, reference_rate: float
) -> tuple[float, float, float]:
    """Threshold chosen by ``rule`` on a model's held-out ``scores``, and AUC and EOdds there."""
    threshold = choose_threshold(held.labels.numpy(), scores.numpy(), rule, reference_rate)
    metrics = evaluate_scores(held, scores, threshold)[0]
    return threshold, metrics["auc"], metrics["eodds_mean"]


@dataclass
class Arena:
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
        """Fit ``method`` with ``point`` on the fit part; judge it on the held-out part."""
        config = {**self.settings.overrides.get(method, {}), **point, "seed": self.seed}
        result = get_method(method, **config).fit(
            self.model, self.fit, head=self.head, progress=self.progress
        )
        scores = predict_proba(result.model, self.held)
        scored = judge(scores, self.held, self.settings.threshold_rule, self.reference_rate)
        return Candidate(point, result.model, result, *scored)


def search(method: str, arena: Arena, start_auc: float) -> list[Candidate]:
    """Every setting tried for ``method``: its defaults, each grid point, or optuna's trials."""
    settings = arena.settings
    if not settings.grid or settings.tuner == "grid":
        grid = settings.grid_of(method) if settings.grid else {}
        return [arena.attempt(method, point) for point in grid_points(grid)]
    try:
        import optuna
    except ImportError:
        raise FairtuneError("the optuna tuner needs optuna: pip install 'fairtune[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    candidates: list[Candidate] = []

    def objective(trial: optuna.Trial) -> float:
        candidate = arena.attempt(method, suggest(trial, settings.grid_of(method)))
        candidates.append(candidate)
        # The selection rule as one number: AUC within tolerance first, then lower EOdds.
        shortfall = max(0.0, start_auc - settings.auc_tolerance - _nan_low(candidate.held_auc))
        return shortfall * 100 + _nan_high(candidate.held_eodds)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=arena.seed))
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
) -> list[dict[str, Any]]:
    """Run every method from ``model``; one result row per (method, seed), baseline first."""
    settings = settings or CompareSettings()
    check_groups(external)
    check_groups(test)
    if external.group_names != test.group_names:
        raise FairtuneError(
            f"external groups {external.group_names} differ from test groups {test.group_names}"
        )
    rows = []
    for seed in settings.seeds:
        fit, held = holdout_split(external, settings.holdout, seed)
        start_scores = predict_proba(model, held)
        reference_rate = float((start_scores >= 0.5).float().mean())

        t0, start_auc, start_eodds = judge(
            start_scores, held, settings.threshold_rule, reference_rate
        )
        rows.append(
            _row(
                "baseline",
                seed,
                {},
                0.0,
                model,
                t0,
                test,
                settings,
                {"held_out_auc": start_auc, "held_out_eodds_mean": start_eodds},
            )
        )
        arena = Arena(model, fit, held, settings, seed, reference_rate, head, progress)
        for name in settings.methods:
            begin = time.perf_counter()
            candidates = search(name, arena, start_auc)
            spent = time.perf_counter() - begin
            best = select(candidates, start_auc, settings.auc_tolerance)
            selection = {
                "rule": settings.selection_rule() if settings.grid else "defaults (no search)",
                "chosen": best.point,
                "tried": [
                    {
                        "setting": c.point,
                        "held_out_auc": c.held_auc,
                        "held_out_eodds_mean": c.held_eodds,
                    }
                    for c in candidates
                ],
                "held_out_auc": best.held_auc,
                "held_out_eodds_mean": best.held_eodds,
                "search_time_s": spent,
            }
            rows.append(
                _row(
                    name,
                    seed,
                    best.result.config,
                    best.result.wall_time_s,
                    best.model,
                    best.threshold,
                    test,
                    settings,
                    selection,
                )
            )
    return rows


def _row(
    method: str,
    seed: int,
    config: dict[str, Any],
    wall_time: float,
    model: nn.Module,
    threshold: float,
    test: FairData,
    settings: CompareSettings,
    selection: dict[str, Any],
) -> dict[str, Any]:
    """One results row: test metrics at 0.5 and at the chosen threshold, with intervals."""
    scores = predict_proba(model, test)
    metrics, ci = evaluate_scores(test, scores, 0.5, settings.n_boot, seed)
    tuned, ci_tuned = evaluate_scores(test, scores, threshold, settings.n_boot, seed)
    return {
        "method": method,
        "seed": seed,
        "config": config,
        "wall_time_s": wall_time,
        "threshold": threshold,
        "threshold_rule": settings.threshold_rule,
        "metrics": metrics,
        "metrics_tuned": tuned,
        "ci": ci,
        "ci_tuned": ci_tuned,
        "selection": selection,
    }


def summarise(rows: Sequence[dict[str, Any]], key: str, tuned: bool = False) -> dict[str, Any]:
    """Per method: mean, standard deviation over seeds and (one seed) the bootstrap interval."""
    out: dict[str, Any] = {}
    part = "metrics_tuned" if tuned else "metrics"
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        values = np.array([_value(r, part, key) for r in mine], dtype=float)
        ci = mine[0]["ci_tuned" if tuned else "ci"] if len(mine) == 1 else None
        out[method] = {
            "mean": float(np.nanmean(values)) if not np.isnan(values).all() else math.nan,
            "std": float(np.nanstd(values)) if len(values) > 1 else math.nan,
            "ci": None if ci is None else ci.get(key),
            "n_seeds": len(mine),
        }
    return out


def _value(row: dict[str, Any], part: str, key: str) -> float:
    if key == "wall_time_s":
        return row["wall_time_s"]
    return row[part][key]
