"""The achievable front: how far the selected model is from the best trade-off in reach.

On one seed's held-out external part (never the test set), the front is the
lowest value of the criterion's metric (EOdds mean by default) at t among every
candidate whose held-out AUC is within the AUC tolerance of the starting model's:
the starting model, every fitted setting of every method, and the group
thresholds (fairlearn's ThresholdOptimizer under the objective's constraint,
fitted on the fit part; they decide with the attribute and have no AUC, so they
always count). A degenerate candidate at t does not count. The record says
which candidate is the front, the best model with one threshold and no
attribute, and the selected model's distance from both (METHODS.md,
"Achievable front").
"""

from __future__ import annotations

import math

from torch import nn

from fairtune.data import FairData
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.metrics import binary_metrics
from fairtune.evaluation.postprocess import LabelledScores, threshold_optimizer_reference
from fairtune.methods.registry import ORIGINAL
from fairtune.models import predict_proba
from fairtune.selection.auto import SeedRun
from fairtune.selection.records import Front, FrontPoint
from fairtune.selection.references import REFERENCE


def group_thresholds_held_out(
    model: nn.Module, fit: FairData, held: FairData, seed: int, criterion: Criterion
) -> float:
    """The criterion's metric of the group thresholds' decisions on ``held``, fitted on
    ``fit`` under the objective's constraint."""
    scored = LabelledScores(
        predict_proba(model, fit).numpy(), fit.labels.numpy(), fit.groups.numpy()
    )
    decisions = threshold_optimizer_reference(
        scored,
        predict_proba(model, held).numpy(),
        held.groups.numpy(),
        held.group_names,
        seed=seed,
        constraints=criterion.declared.constraint,
    ).decisions
    labels, groups = held.labels.numpy(), held.groups.numpy()
    return float(binary_metrics(labels, decisions, groups, held.group_names)[criterion.key])


def _lowest(point: FrontPoint) -> float:
    """Sort key: a point's value, NaN last."""
    return math.inf if math.isnan(point.value) else point.value


def achievable_front(run: SeedRun) -> Front:
    """The front of one seed's held-out part and the selected model's distance from it."""
    context, start = run.context, run.start.held
    criterion = context.settings.criterion
    floor = start.auc - criterion.tolerance
    points = [(ORIGINAL, {}, run.start.held)] + [(m, c.point, c.held) for m, c in run.pool()]
    reach = [
        FrontPoint(m, p, h.of(criterion))
        for m, p, h in points
        if h.auc >= floor and not h.degenerate
    ]
    none = FrontPoint(None, {}, math.nan)
    one_threshold = min(reach, key=_lowest, default=none)  # empty: the start is degenerate
    grouped = group_thresholds_held_out(
        context.model, context.fit, context.held, context.seed, criterion
    )
    best = min([one_threshold, FrontPoint(REFERENCE, {}, grouped)], key=_lowest)
    selected = run.chosen().held.of(criterion)
    return Front(criterion.key, best, one_threshold, grouped, selected, floor)


def front_note(seed: int, front: Front, criterion: Criterion) -> str:
    """The front of one seed and the selected model's distance from it, in words."""
    best, one = front.best, front.one_threshold
    return (
        f"achievable front (seed {seed}, held-out part): {criterion.label} at t "
        f"{best.value:.3f} ({best.method}); with one threshold and no attribute "
        f"{one.value:.3f} ({one.method}); the selected model "
        f"{front.selected:.3f} is {front.distance:+.3f} from the front and "
        f"{front.distance_one_threshold:+.3f} from the best one-threshold model"
    )
