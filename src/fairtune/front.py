"""The achievable front: how far the selected model is from the best trade-off in reach.

On one seed's held-out external part (never the test set), the front is the
lowest EOdds (mean) at t among every candidate whose held-out AUC is within the
AUC tolerance of the starting model's: the starting model, every fitted setting
of every method, and the group thresholds (fairlearn's ThresholdOptimizer fitted
on the fit part, which decide with the attribute and have no AUC, so they
always count). A degenerate candidate at t does not count. The record says
which candidate is the front, the best model with one threshold and no
attribute, and the selected model's distance from both (METHODS.md,
"Achievable front").
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from fairtune.auto import ORIGINAL, SeedRun
from fairtune.data import FairData
from fairtune.metrics import binary_metrics
from fairtune.models import predict_proba
from fairtune.postprocess import threshold_optimizer_reference
from fairtune.references import REFERENCE


def group_thresholds_held_out(model: nn.Module, fit: FairData, held: FairData, seed: int) -> float:
    """EOdds (mean) of the group thresholds' decisions on ``held``, fitted on ``fit``."""
    decisions = threshold_optimizer_reference(
        predict_proba(model, fit).numpy(),
        fit.labels.numpy(),
        fit.groups.numpy(),
        predict_proba(model, held).numpy(),
        held.groups.numpy(),
        held.group_names,
        seed=seed,
    ).decisions
    labels, groups = held.labels.numpy(), held.groups.numpy()
    return float(binary_metrics(labels, decisions, groups, held.group_names)["eodds_mean"])


def _lowest(point: dict[str, Any]) -> float:
    """Sort key: a point's EOdds, NaN last."""
    return math.inf if math.isnan(point["eodds_mean"]) else point["eodds_mean"]


def achievable_front(run: SeedRun) -> dict[str, Any]:
    """The front of one seed's held-out part and the selected model's distance from it."""
    context, start = run.context, run.start.held
    floor = start.auc - context.settings.auc_tolerance
    points = [(ORIGINAL, {}, run.start.held)] + [(m, c.point, c.held) for m, c in run.pool()]
    reach = [
        {"method": m, "setting": p, "eodds_mean": h.eodds_mean}
        for m, p, h in points
        if h.auc >= floor and not h.degenerate
    ]
    none = {"method": None, "setting": {}, "eodds_mean": math.nan}
    one_threshold = min(reach, key=_lowest, default=none)  # empty: the start is degenerate
    grouped = group_thresholds_held_out(context.model, context.fit, context.held, context.seed)
    front = min(
        [one_threshold, {"method": REFERENCE, "setting": {}, "eodds_mean": grouped}], key=_lowest
    )
    selected = run.chosen().held.eodds_mean
    return {
        "eodds_mean": front["eodds_mean"],
        "method": front["method"],
        "setting": front["setting"],
        "group_thresholds_eodds_mean": grouped,
        "one_threshold": one_threshold,
        "selected_eodds_mean": selected,
        "distance": selected - front["eodds_mean"],
        "distance_one_threshold": selected - one_threshold["eodds_mean"],
        "auc_floor": floor,
    }


def front_note(seed: int, front: dict[str, Any]) -> str:
    """The front of one seed and the selected model's distance from it, in words."""
    best = front["one_threshold"]
    return (
        f"achievable front (seed {seed}, held-out part): EOdds (mean) at t "
        f"{front['eodds_mean']:.3f} ({front['method']}); with one threshold and no attribute "
        f"{best['eodds_mean']:.3f} ({best['method']}); the selected model "
        f"{front['selected_eodds_mean']:.3f} is {front['distance']:+.3f} from the front and "
        f"{front['distance_one_threshold']:+.3f} from the best one-threshold model"
    )
