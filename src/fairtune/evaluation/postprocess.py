"""The post-processing reference: group-specific randomized thresholds (Hardt et al. 2016).

fairlearn's ``ThresholdOptimizer`` under a fairness constraint (equalized odds by
default; true-positive-rate parity or demographic parity), prefit on a model's
scores: it learns, per group, which thresholds to mix with which
probabilities so that the groups' rates agree. Unlike the weight-level
methods it needs each row's sensitive attribute when it decides
(METHODS.md, "Verdicts": show both, say which needs what).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from fairtune.evaluation.metrics import check_group_names, check_inputs


class _ScoreColumn(ClassifierMixin, BaseEstimator):
    """A prefit classifier whose one input column is already its score for class 1."""

    def fit(self, X: Any, y: Any = None) -> _ScoreColumn:
        """Nothing to learn: the scores come from the model already trained."""
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        """Columns (1 - score, score)."""
        s = np.asarray(X, dtype=np.float64)[:, 0]
        return np.column_stack([1.0 - s, s])

    def predict(self, X: Any) -> np.ndarray:
        """Decisions at 0.5, as ``score >= 0.5`` elsewhere in fairtune."""
        return (np.asarray(X, dtype=np.float64)[:, 0] >= 0.5).astype(np.int64)


@dataclass(frozen=True)
class GroupRule:
    """One group's randomized decision rule, as fairlearn's interpolation states it.

    With probability ``p0`` the decision is ``score <operator0> threshold0``,
    else ``score <operator1> threshold1``; that decision is then replaced by a
    coin with P(positive) = ``constant`` with probability ``p_ignore``.
    """

    p0: float
    operator0: str
    threshold0: float
    p1: float
    operator1: str
    threshold1: float
    p_ignore: float
    constant: float


@dataclass(frozen=True)
class ThresholdOptimizerResult:
    """Decisions on the test rows and the per-group rules that made them."""

    decisions: np.ndarray
    rules: Mapping[str, GroupRule]
    needs_attribute_at_prediction: bool = field(default=True, init=False)

    def to_dict(self) -> dict[str, Any]:
        """The record without the decisions: the rules and what the method needs."""
        return {
            "needs_attribute_at_prediction": self.needs_attribute_at_prediction,
            "rules": {name: vars(rule).copy() for name, rule in self.rules.items()},
        }


def _rule(bunch: Any) -> GroupRule:
    return GroupRule(
        p0=float(bunch.p0),
        operator0=bunch.operation0.operator,
        threshold0=float(bunch.operation0.threshold),
        p1=float(bunch.p1),
        operator1=bunch.operation1.operator,
        threshold1=float(bunch.operation1.threshold),
        p_ignore=float(bunch.get("p_ignore", 0.0)),
        constant=float(bunch.get("prediction_constant", 0.0)),
    )


@dataclass(frozen=True)
class LabelledScores:
    """The rows the thresholds are fitted on: a model's scores, the labels and group ids."""

    scores: Any
    labels: Any
    groups: Any


def threshold_optimizer_reference(
    fit: LabelledScores,
    test_scores: Any,
    test_groups: Any,
    group_names: Sequence[str],
    seed: int = 0,
    constraints: str = "equalized_odds",
    objective: str = "accuracy_score",
) -> ThresholdOptimizerResult:
    """Fit group thresholds under ``constraints`` on one set's scores and decide on another's.

    The scores are the only feature: ``ThresholdOptimizer(constraints=
    constraints, objective=objective, prefit=True, predict_method="predict_proba")``
    (fairlearn's default objective, accuracy, unless named) fits on
    ``fit`` (labels, group names as the sensitive feature) and predicts the
    test rows with ``random_state=seed``, which fixes its coin flips.
    """
    names = check_group_names(group_names)
    y, s_fit, g_fit = check_inputs(fit.labels, fit.scores, fit.groups, len(names))
    placeholder_labels = np.zeros(np.shape(test_scores))  # no labels needed to decide
    _, s_test, g_test = check_inputs(placeholder_labels, test_scores, test_groups, len(names))
    named = np.asarray(names, dtype=object)
    optimizer = ThresholdOptimizer(
        estimator=_ScoreColumn(),
        constraints=constraints,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
    )
    optimizer.fit(s_fit[:, None], y.astype(np.int64), sensitive_features=named[g_fit])
    decisions = optimizer.predict(
        s_test[:, None], sensitive_features=named[g_test], random_state=seed
    )
    interpolation = optimizer.interpolated_thresholder_.interpolation_dict
    rules = {str(name): _rule(bunch) for name, bunch in interpolation.items()}
    return ThresholdOptimizerResult(np.asarray(decisions, dtype=np.int64), rules)


def decision_probabilities(
    rules: Mapping[str, GroupRule], scores: Any, groups: Any, group_names: Sequence[str]
) -> np.ndarray:
    """P(decision = 1) of each row under its group's randomized rule (fairlearn's
    interpolation: p0 [s op0 t0] + p1 [s op1 t1], then a coin with P = ``constant`` for a
    ``p_ignore`` share); a group without a rule decides 0."""
    names = check_group_names(group_names)
    _, s, g = check_inputs(np.zeros(np.shape(scores)), scores, groups, len(names))
    out = np.zeros(len(s))
    compare = {">": np.greater, "<": np.less}
    for k, name in enumerate(names):
        rule, rows = rules.get(name), g == k
        if rule is None:
            continue
        p = rule.p0 * compare[rule.operator0](s[rows], rule.threshold0) + rule.p1 * compare[
            rule.operator1
        ](s[rows], rule.threshold1)
        out[rows] = (1.0 - rule.p_ignore) * p + rule.p_ignore * rule.constant
    return out
