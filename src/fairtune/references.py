"""The post-processing reference row of a comparison: group thresholds on the starting model.

fairlearn's ``ThresholdOptimizer`` (equalized odds, prefit) learns group-specific
randomized thresholds on the starting model's scores for the same fit part of
the external set the methods fine-tune on, and decides the test rows. It is not
fine-tuned and not a method of the registry: it is what a user who has the
sensitive attribute at prediction time could do instead.

Its decisions are 0/1, so the metrics are computed from them at 0.5 (the same
at t). Metrics that need a ranking score (AUC, worst-group AUC, AUC gap, ECE)
are reported as n/a (NaN): an "AUC" of hard decisions would be the balanced
accuracy, not comparable with the other rows' AUC.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from typing import Any

import torch
from torch import nn

from fairtune.data import FairData
from fairtune.evaluation import evaluate_scores
from fairtune.metrics import METRICS, FairnessWarning
from fairtune.models import predict_proba
from fairtune.postprocess import threshold_optimizer_reference
from fairtune.results import ResultRow

REFERENCE = "threshold_optimizer"
"""The reference row's name in tables and results.json."""

SCORE_ONLY = tuple(m.key for m in METRICS if not m.threshold_dependent and not m.count)
"""Metrics of a ranking score, undefined for hard decisions."""


def _decisions_only(metrics: dict[str, Any], ci: dict[str, Any] | None) -> None:
    """Set the score-only metrics (and their intervals and per-group values) to NaN, and
    the operating points (thresholds on a score) to None."""
    metrics["operating_points"] = dict.fromkeys(metrics.get("operating_points", {}))
    for key in SCORE_ONLY:
        metrics[key] = math.nan
        if ci is not None:
            ci[key] = [math.nan, math.nan]
        for group in metrics["by_group"].values():
            if key in group:
                group[key] = math.nan


def threshold_optimizer_row(
    model: nn.Module, fit: FairData, test: FairData, seed: int, n_boot: int
) -> ResultRow:
    """The reference row for one seed: thresholds fitted on ``fit``, measured on ``test``."""
    begin = time.perf_counter()
    reference = threshold_optimizer_reference(
        predict_proba(model, fit).numpy(),
        fit.labels.numpy(),
        fit.groups.numpy(),
        predict_proba(model, test).numpy(),
        test.groups.numpy(),
        test.group_names,
        seed=seed,
    )
    spent = time.perf_counter() - begin
    decisions = torch.as_tensor(reference.decisions, dtype=torch.float32)
    with warnings.catch_warnings():  # operating points of 0/1 decisions are dropped below
        warnings.filterwarnings("ignore", "operating point undefined", FairnessWarning)
        metrics, ci = evaluate_scores(test, decisions, 0.5, n_boot, seed)
    _decisions_only(metrics, ci)
    return ResultRow(
        method=REFERENCE,
        seed=seed,
        config=reference.to_dict(),
        wall_time_s=spent,
        threshold=0.5,
        threshold_rule="group_thresholds",
        metrics=metrics,
        metrics_tuned=copy.deepcopy(metrics),
        ci=ci,
        ci_tuned=copy.deepcopy(ci),
        selection={
            "chosen": {},
            "reference": "fairlearn ThresholdOptimizer(constraints='equalized_odds', "
            "prefit=True) on the starting model's scores, fitted on the external set's fit "
            "part; not fine-tuned, never selected; AUC-type metrics n/a for 0/1 decisions"
        },
        needs_sensitive_attribute_at_prediction=True,
    )
