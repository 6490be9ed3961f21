"""Evaluation of a model on a :class:`~fairtune.data.FairData`: scores, metrics, intervals.

Besides the metrics at one threshold, every evaluation reports verdicts a
shifted threshold cannot game (METHODS.md, "Verdicts"): the operating points,
ABROCA, and whether the model is degenerate at that threshold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from fairtune import settings
from fairtune.data import FairData
from fairtune.errors import FairtuneError
from fairtune.evaluation.measurement import Evaluation, Intervals, Metrics, Verdicts
from fairtune.evaluation.metrics import Bootstrap, FairnessWarning, binary_metrics, bootstrap_ci
from fairtune.evaluation.operating import OperatingPoint, abroca, degenerate, operating_points
from fairtune.models import predict_proba
from fairtune.settings import setting

_LEVEL = {"low": 0.0, "high": 1.0, "open_low": True, "open_high": True}


@dataclass(frozen=True)
class VerdictSettings:
    """Where the operating points lie and when a model counts as degenerate."""

    specificity: float = setting(
        0.8, "overall specificity of the first operating point", **_LEVEL
    )
    sensitivity: float = setting(
        0.8, "overall sensitivity of the second operating point", **_LEVEL
    )
    degenerate_rate: float = setting(
        0.01,
        "a model is degenerate at a threshold when some group's positive rate is below this "
        "or above one minus this",
        low=0.0,
        high=0.5,
        open_high=True,
    )

    def __post_init__(self) -> None:
        settings.check(self)

    @property
    def levels(self) -> tuple[tuple[str, float], ...]:
        """The ``(criterion, level)`` pairs of
        :func:`fairtune.evaluation.operating.operating_points`."""
        return (("specificity", self.specificity), ("sensitivity", self.sensitivity))

    @property
    def bounds(self) -> tuple[float, float]:
        """The positive rates between which a group's decisions are not degenerate."""
        return self.degenerate_rate, 1.0 - self.degenerate_rate


@dataclass(frozen=True)
class ScoredRows:
    """Rows with a model's scores, as the metric functions take them: labels, scores,
    group ids and the group names the ids index."""

    labels: np.ndarray
    scores: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]

    @classmethod
    def of(cls, data: FairData, scores: torch.Tensor) -> ScoredRows:
        """The rows of ``data`` with ``scores``, as numpy arrays."""
        names = tuple(data.group_names)
        return cls(data.labels.numpy(), scores.numpy(), data.groups.numpy(), names)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        """``(y_true, scores, groups, group_names)``, the leading arguments of the functions
        of :mod:`fairtune.evaluation.metrics` and :mod:`fairtune.evaluation.operating`."""
        return self.labels, self.scores, self.groups, self.group_names


def verdicts(rows: ScoredRows, threshold: float, verdict: VerdictSettings) -> Verdicts:
    """The operating points, ABROCA and the degenerate flag at ``threshold``.

    An operating
    point no threshold reaches (one class only, or too many tied extreme
    scores) is ``None``, announced by a :class:`FairnessWarning`. Undefined
    per-group rates are not announced again: the metrics at the threshold did.
    """
    low, high = verdict.bounds
    args = rows.arrays()
    points: dict[str, OperatingPoint | None] = {}
    undefined = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FairnessWarning)
        for criterion, level in verdict.levels:
            try:
                (point,) = operating_points(*args, levels=((criterion, level),), low=low, high=high)
                points[point.key] = point
            except FairtuneError as err:
                points[f"{criterion}_{level:g}"] = None
                undefined.append(str(err))
        area = abroca(*args)
    for reason in undefined:
        warnings.warn(f"operating point undefined: {reason}", FairnessWarning, stacklevel=3)
    flag = degenerate(rows.scores, rows.groups, rows.group_names, threshold, low=low, high=high)
    return Verdicts(points, area, flag)


def evaluate_scores(
    data: FairData,
    scores: torch.Tensor,
    threshold: float = 0.5,
    n_boot: int = 0,
    seed: int = 0,
    verdict: VerdictSettings | None = None,
) -> Evaluation:
    """Metrics of given probabilities (and bootstrap intervals when ``n_boot`` > 0).

    The metrics are those of :func:`fairtune.evaluation.metrics.binary_metrics` at
    ``threshold`` plus the :func:`verdicts` by ``verdict`` (defaults when not
    given); the intervals cover the :data:`fairtune.evaluation.metrics.METRIC_KEYS`.
    """
    rows = ScoredRows.of(data, scores)
    args = rows.arrays()
    at = binary_metrics(*args, threshold=threshold)
    metrics = Metrics.of(at, verdicts(rows, at["threshold"], verdict or VerdictSettings()))
    if not n_boot:
        return Evaluation(metrics, None)
    resampling = Bootstrap(n_boot=n_boot, seed=seed)
    bounds = bootstrap_ci(*args, threshold=threshold, bootstrap=resampling)
    return Evaluation(metrics, Intervals({k: (low, high) for k, (low, high) in bounds.items()}))


def evaluate_model(
    model: torch.nn.Module,
    data: FairData,
    threshold: float = 0.5,
    n_boot: int = 0,
    seed: int = 0,
    verdict: VerdictSettings | None = None,
) -> Evaluation:
    """Metrics of ``model`` on ``data`` at ``threshold`` in eval mode: :func:`evaluate_scores`."""
    return evaluate_scores(data, predict_proba(model, data), threshold, n_boot, seed, verdict)
