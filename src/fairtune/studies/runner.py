"""Running a study's points: per seed, the split compare uses, a fit per point, its measures.

Per seed the external set is split as ``compare`` splits it
(:func:`fairtune.data.holdout_split`); each point is fitted on the fit part
(or a stratified share of it), its threshold t is chosen on the held-out part
by the rule compare uses, and every test set measures it at 0.5 and at t, with a
bootstrap interval at t of each headline metric (``settings.n_boot`` resamples).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fairtune.data import FairData, holdout_split
from fairtune.errors import FairtuneError
from fairtune.evaluation.evaluate import evaluate_scores
from fairtune.finetune.training import TrainingDiverged
from fairtune.models import predict_proba
from fairtune.selection.rules import held_out_score
from fairtune.selection.search import fit_and_held
from fairtune.studies.points import StudyPoint, StudySettings
from fairtune.studies.summary import headline

START = "start"
"""The series of the unchanged starting model, measured once per seed."""


@dataclass
class SeedParts:
    """One seed's data: the fit and held-out parts of the external set, the test sets, and
    the starting model's positive rate at 0.5 on the held-out part (for the threshold rule)."""

    seed: int
    fit: FairData
    held: FairData
    tests: dict[str, FairData]
    reference_rate: float


def seed_parts(
    model: nn.Module, external: FairData, tests: dict[str, FairData], share: float, seed: int
) -> SeedParts:
    """Split ``external`` by ``seed`` as compare does."""
    fit, held = fit_and_held(external, share, seed)
    rate = float((predict_proba(model, held) >= 0.5).float().mean())
    return SeedParts(seed, fit, held, tests, rate)


def stratified_share(data: FairData, share: float, seed: int) -> FairData:
    """``share`` of every (group, label) cell of ``data``; shares of one seed are nested.
    A share too small to hold both classes is refused, naming the share (not the set)."""
    if share >= 1:
        return data
    part = holdout_split(data, 1 - share, seed)[0]
    if len(np.unique(part.labels.numpy())) < 2:
        raise FairtuneError(
            f"a share of {share:g} of the {len(data)} external rows used for fitting keeps "
            f"{len(part)} row(s), all of one class: choose larger --sizes"
        )
    return part


def measure(
    model: nn.Module, parts: SeedParts, settings: StudySettings, fit_time: float
) -> dict[str, Any]:
    """A fitted model's held-out score (threshold t chosen there) and each test set's metrics
    at 0.5 and at t, with the bootstrap intervals at t of the :func:`headline` metrics
    (``ci_at_t``, None with no resamples); ``failed`` when its scores are not finite."""
    scores = predict_proba(model, parts.held)
    if not torch.isfinite(scores).all():
        return {"wall_time_s": fit_time, "failed": "held-out scores are NaN: training diverged"}
    held = held_out_score(scores, parts.held, settings.threshold_rule, parts.reference_rate)
    criterion = settings.criterion
    tests = {}
    for name, test in parts.tests.items():
        test_scores = predict_proba(model, test)
        at_t = evaluate_scores(test, test_scores, held.threshold, settings.n_boot, parts.seed)
        ci = at_t.intervals
        tests[name] = {
            "at_0.5": evaluate_scores(test, test_scores, 0.5).metrics.to_dict(),
            "at_t": at_t.metrics.to_dict(),
            "ci_at_t": {key: list(ci.bounds[key]) for key in headline(criterion)} if ci else None,
        }
    return {
        "threshold": held.threshold,
        "held_out": {
            "auc": held.auc,
            criterion.key: held.of(criterion),
            "degenerate": held.degenerate,
        },
        "test": tests,
        "wall_time_s": fit_time,
        "failed": None,
    }


def run_point(
    point: StudyPoint,
    model: nn.Module,
    parts: SeedParts,
    settings: StudySettings,
    head: str | None,
) -> dict[str, Any]:
    """Fit ``point`` on this seed's fit part and measure it: one record of study.json."""
    record = {**point.record(), "seed": parts.seed}
    begin = time.perf_counter()
    try:
        fit = stratified_share(parts.fit, point.size, parts.seed)
        result = point.build(settings, parts.seed).fit(model, fit, head=head)
    except TrainingDiverged as diverged:
        return {**record, "wall_time_s": time.perf_counter() - begin, "failed": str(diverged)}
    moved = {"largest_change": largest_change(model, result.model)}
    return {**record, **moved, **measure(result.model, parts, settings, result.wall_time_s)}


def largest_change(start: nn.Module, fitted: nn.Module) -> float:
    """The largest absolute difference between the two models' weights and buffers."""
    before = start.state_dict()
    return max(
        (
            float((value.double() - before[key].double()).abs().max())
            for key, value in fitted.state_dict().items()
            if value.is_floating_point() and value.numel()
        ),
        default=0.0,
    )


def start_record(model: nn.Module, parts: SeedParts, settings: StudySettings) -> dict[str, Any]:
    """The starting model's record for this seed (series ``start``)."""
    point = StudyPoint(START, START, None)
    return {**point.record(), "seed": parts.seed, **measure(model, parts, settings, 0.0)}
