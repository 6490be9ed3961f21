"""Cross-fitted evidence: where the held-out rows are too few to show the best setting's gain.

The cross-method rule keeps the original unless the paired bootstrap on the held-out
part shows that the best setting improves on it (:class:`~fairtune.selection.rules.
CrossMethodRule`). On a small external set that part is a few dozen rows, and a real gain
goes unseen. With ``CompareSettings.crossfit`` = K, the best setting is then fitted K more
times, each on all external rows but one fold (K folds stratified on group and label), and
scored on the fold it never saw; the pooled scores give every external row a score from a
fit that did not train on it. The starting model scores every row too (it never trained on
the external set), each side takes its threshold by the comparison's rule on those rows, and
the same paired bootstrap is drawn on all of them. The setting is kept only if that
improvement's lower bound lies above 0 and its AUC there is within the tolerance of the
original's. The model handed back is still the setting's fit on the fit part, the one the
search measured; the evidence is about the setting (METHODS.md, "Cross-fitted evidence").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fairtune.data import FairData
from fairtune.evaluation.metrics import Bootstrap, binary_metrics
from fairtune.evaluation.operating import degenerate
from fairtune.evaluation.paired import Improvement, ScoredModel, paired_bootstrap_improvement
from fairtune.evaluation.thresholds import choose_threshold
from fairtune.methods import DebiasResult
from fairtune.models import predict_proba
from fairtune.selection.rules import SELECTION_BOOT, Contender, CrossChoice
from fairtune.selection.search import SearchContext


def folds_of(data: FairData, k: int, seed: int) -> np.ndarray:
    """Each row's fold in ``range(k)``: every (group, label) cell dealt out in turn after a
    shuffle by ``seed``, so each fold holds its share of every cell."""
    rng = np.random.default_rng(seed)
    cells = data.groups.numpy() * 2 + data.labels.numpy().astype(np.int64)
    fold = np.empty(len(data), dtype=np.int64)
    start = 0
    for cell in np.unique(cells):
        rows = rng.permutation(np.flatnonzero(cells == cell))
        fold[rows] = (start + np.arange(len(rows))) % k
        start += len(rows)
    return fold


@dataclass(frozen=True)
class CrossFitted:
    """The setting's pooled out-of-fold scores against the original's on every external
    row: the paired improvement of the criterion's metric, both AUCs and whether the
    pooled decisions are degenerate."""

    rows: int
    improvement: Improvement
    auc_original: float
    auc_setting: float
    degenerate: bool  # the pooled decisions give some group (almost) one decision


def cross_fit(
    context: SearchContext, external: FairData, method: str, point: dict, folds: int
) -> CrossFitted | None:
    """Fit ``method`` at ``point`` on all of ``external`` but one fold, ``folds`` times, and
    judge the pooled out-of-fold scores against the starting model's on every row (None:
    some fold's fit diverged)."""
    fold = folds_of(external, folds, context.seed)
    pooled = torch.empty(len(external))
    for k in range(folds):
        inside, outside = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        parts = {"fit": external.subset(inside), "held": external.subset(outside)}
        here = replace(context, **parts, progress=False, importances=None, features=None)
        fitted = here.fitted(method, point)
        if not isinstance(fitted, DebiasResult):
            return None
        scores = predict_proba(fitted.model, here.held)
        if not torch.isfinite(scores).all():
            return None
        pooled[torch.as_tensor(outside)] = scores.float()
    y, g = external.labels.numpy(), external.groups.numpy()
    names = external.group_names
    rule, criterion = context.settings.threshold_rule, context.settings.criterion
    start = predict_proba(context.model, external).numpy()
    rate = float((start >= 0.5).mean())
    sides = [
        ScoredModel(s, choose_threshold(y, s, rule, rate)) for s in (start, pooled.numpy())
    ]
    improvement = paired_bootstrap_improvement(
        y, g, names, *sides, Bootstrap(n_boot=SELECTION_BOOT, seed=context.seed), criterion.key
    )
    auc = [binary_metrics(y, side.scores, g, names, side.threshold)["auc"] for side in sides]
    flat = degenerate(sides[1].scores, g, names, sides[1].threshold).flagged
    return CrossFitted(len(external), improvement, float(auc[0]), float(auc[1]), flat)


def cross_fitted_choice(
    context: SearchContext, external: FairData, choice: CrossChoice, contenders: list[Contender]
) -> CrossChoice:
    """``choice`` again where it kept the original although some setting ranked first:
    that setting kept if its cross-fitted evidence shows the improvement the held-out rows
    could not (see the module's text), else the original with both reasons."""
    if choice.index is not None or choice.best is None:
        return choice
    winner = contenders[choice.best]
    found = cross_fit(context, external, winner.method, winner.setting, context.settings.crossfit)
    criterion = context.settings.criterion
    if found is None:
        said = "a cross-fitted fit diverged"
        return replace(choice, reason=f"{choice.reason}; cross-fitted evidence: {said}")
    gain = found.improvement
    said = (
        f"cross-fitted on all {found.rows} external rows ({context.settings.crossfit} folds): "
        f"improvement {gain.estimate:.3f} [95% {gain.low:.3f}, {gain.high:.3f}], AUC "
        f"{found.auc_original:.3f} -> {found.auc_setting:.3f}"
    )
    fair_enough = found.auc_setting >= found.auc_original - criterion.tolerance
    if not (gain.improves and fair_enough) or found.degenerate:
        return replace(choice, reason=f"{choice.reason}; {said}: kept")
    named = f"{winner.method} {winner.setting}"
    reason = f"chose {named}: the held-out rows alone could not show its gain; {said}"
    return replace(
        choice,
        index=choice.best,
        method=winner.method,
        setting=winner.setting,
        reason=reason,
        improvement=gain,
    )
