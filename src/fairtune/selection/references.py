"""The post-processing reference row of a comparison: group thresholds on the starting model.

fairlearn's ``ThresholdOptimizer`` (prefit, under the constraint of the comparison's
objective: equalized odds, true-positive-rate parity or demographic parity) learns group-specific
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

import math
import time
import warnings
from dataclasses import fields, replace

import torch
from torch import nn

from fairtune.data import FairData
from fairtune.evaluation.criterion import Criterion
from fairtune.evaluation.evaluate import evaluate_scores
from fairtune.evaluation.measurement import Evaluation, Intervals
from fairtune.evaluation.metrics import METRICS, FairnessWarning
from fairtune.evaluation.postprocess import LabelledScores, threshold_optimizer_reference
from fairtune.models import predict_proba
from fairtune.selection.records import ReferenceRecord
from fairtune.selection.results import ResultRow

REFERENCE = "threshold_optimizer"
"""The reference row's name in tables and results.json."""

SCORE_ONLY = tuple(m.key for m in METRICS if not m.threshold_dependent and not m.count)
"""Metrics of a ranking score, undefined for hard decisions."""


def _decisions_only(found: Evaluation) -> Evaluation:
    """The evaluation of 0/1 decisions with the score-only metrics (and their intervals and
    per-group values) NaN and the operating points (thresholds on a score) None."""
    metrics, ci = found.metrics, found.intervals
    by_group = {
        name: replace(g, **{f.name: math.nan for f in fields(g) if f.name in SCORE_ONLY})
        for name, g in metrics.by_group.items()
    }
    points = dict.fromkeys(metrics.operating_points)
    metrics = replace(
        metrics, **dict.fromkeys(SCORE_ONLY, math.nan), by_group=by_group, operating_points=points
    )
    if ci is not None:
        ci = Intervals({**ci.bounds, **dict.fromkeys(SCORE_ONLY, (math.nan, math.nan))})
    return Evaluation(metrics, ci)


def reference_text(criterion: Criterion) -> str:
    """What the reference row is, in one sentence of its ``selection``."""
    return (
        f"fairlearn ThresholdOptimizer(constraints='{criterion.declared.constraint}', "
        "prefit=True) on the starting model's scores, fitted on the external set's fit "
        "part; not fine-tuned, never selected; AUC-type metrics n/a for 0/1 decisions"
    )


def threshold_optimizer_row(
    model: nn.Module,
    fit: FairData,
    test: FairData,
    seed: int,
    n_boot: int,
    criterion: Criterion | None = None,
) -> ResultRow:
    """The reference row for one seed: thresholds fitted on ``fit`` under the constraint of
    ``criterion``'s objective (default: equalized odds), measured on ``test``."""
    criterion = criterion or Criterion()
    begin = time.perf_counter()
    reference = threshold_optimizer_reference(
        LabelledScores(
            predict_proba(model, fit).numpy(), fit.labels.numpy(), fit.groups.numpy()
        ),
        predict_proba(model, test).numpy(),
        test.groups.numpy(),
        test.group_names,
        seed=seed,
        constraints=criterion.declared.constraint,
    )
    spent = time.perf_counter() - begin
    decisions = torch.as_tensor(reference.decisions, dtype=torch.float32)
    with warnings.catch_warnings():  # operating points of 0/1 decisions are dropped below
        warnings.filterwarnings("ignore", "operating point undefined", FairnessWarning)
        found = _decisions_only(evaluate_scores(test, decisions, 0.5, n_boot, seed))
    return ResultRow(
        method=REFERENCE,
        seed=seed,
        config=reference.to_dict(),
        wall_time_s=spent,
        threshold=0.5,
        threshold_rule="group_thresholds",
        metrics=found.metrics,
        metrics_tuned=found.metrics,
        ci=found.intervals,
        ci_tuned=found.intervals,
        selection=ReferenceRecord(reference_text(criterion)),
        needs_sensitive_attribute_at_prediction=True,
    )
