"""Verdicts a shifted threshold cannot fool (METHODS.md, "Verdicts").

Plain functions on numpy arrays, with the conventions of :mod:`fairtune.evaluation.metrics`:
``y_true`` holds 0/1 labels, ``scores`` probabilities in [0, 1], ``groups``
integer ids indexing ``group_names``; a row is predicted positive when
``score >= threshold``.

- :func:`degenerate`: does some group get (almost) only one decision?
- :func:`operating_points`: fairness at the thresholds where the model's
  overall specificity or sensitivity reaches a level.
- :func:`abroca`: the threshold-free area between the groups' ROC curves.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import (
    METRICS,
    FairnessWarning,
    binary_metrics,
    check_group_names,
    check_inputs,
    check_threshold,
)
from fairtune.evaluation.thresholds import cut_points
from fairtune.io import number

CRITERIA: tuple[str, ...] = ("specificity", "sensitivity")
"""Overall rates an operating point can be pinned to."""

DEFAULT_LEVELS: tuple[tuple[str, float], ...] = (("specificity", 0.8), ("sensitivity", 0.8))
"""The operating points medical-imaging fairness benchmarks report."""

GAP_KEYS: tuple[str, ...] = tuple(
    m.key for m in METRICS if m.overall and m.threshold_dependent and m.lower_is_better
)
"""The gaps between groups (lower is fairer) that move with the threshold: each operating
point reports them all."""


@dataclass(frozen=True)
class Degeneracy:
    """Whether some group's positive rate at a threshold lies outside [low, high].

    ``groups`` names the offending groups and ``rates`` holds their positive
    rates; both are empty when ``flagged`` is False. A flagged model predicts
    (almost) one class for a whole group: it is never called fairer.
    """

    flagged: bool
    groups: tuple[str, ...]
    rates: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"flagged": self.flagged, "groups": list(self.groups), "rates": dict(self.rates)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Degeneracy:
        """The flag from its JSON form (:meth:`to_dict`)."""
        rates = {name: number(rate) for name, rate in d["rates"].items()}
        return cls(bool(d["flagged"]), tuple(d["groups"]), rates)


@dataclass(frozen=True)
class OperatingPoint:
    """Fairness at the threshold where the overall ``criterion`` reaches ``level``.

    ``achieved`` is the overall specificity (or sensitivity) at ``threshold``,
    at least ``level``. ``tpr`` and ``fpr`` map each group with rows to its
    rate (NaN where the group lacks that label); the gaps and accuracy are
    those of :func:`fairtune.evaluation.metrics.binary_metrics` at ``threshold``.
    """

    criterion: str
    level: float
    threshold: float
    achieved: float
    tpr: Mapping[str, float]
    fpr: Mapping[str, float]
    eodds_mean: float
    eodds_worst: float
    accuracy: float
    degenerate: Degeneracy
    gaps: Mapping[str, float]
    """Every gap of :data:`GAP_KEYS` at ``threshold`` (the selection's objectives among
    them), by key; the record lists each beside ``eodds_mean``."""

    @property
    def key(self) -> str:
        """The point's name in reports, e.g. ``specificity_0.8``."""
        return f"{self.criterion}_{self.level:g}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (nested dicts, python floats)."""
        out = asdict(self)
        out["tpr"], out["fpr"] = dict(self.tpr), dict(self.fpr)
        out["degenerate"] = self.degenerate.to_dict()
        del out["gaps"]
        return {**out, **self.gaps}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OperatingPoint:
        """The point from its JSON form (:meth:`to_dict`; null read as NaN, and NaN for a
        gap a file written before it was reported lacks)."""
        return cls(
            criterion=d["criterion"],
            level=number(d["level"]),
            threshold=number(d["threshold"]),
            achieved=number(d["achieved"]),
            tpr={name: number(v) for name, v in d["tpr"].items()},
            fpr={name: number(v) for name, v in d["fpr"].items()},
            eodds_mean=number(d["eodds_mean"]),
            eodds_worst=number(d["eodds_worst"]),
            accuracy=number(d["accuracy"]),
            degenerate=Degeneracy.from_dict(d["degenerate"]),
            gaps={key: number(d.get(key)) for key in GAP_KEYS},
        )


def _flag(rates: Mapping[str, float], low: float, high: float) -> Degeneracy:
    """The groups whose positive rate lies below ``low`` or above ``high``."""
    if not 0.0 <= low < high <= 1.0:
        raise FairtuneError(f"need 0 <= low < high <= 1 for the positive rates, got {low}, {high}")
    bad = {name: rate for name, rate in rates.items() if rate < low or rate > high}
    return Degeneracy(flagged=bool(bad), groups=tuple(bad), rates=bad)


def degenerate(
    scores: Any,
    groups: Any,
    group_names: Sequence[str],
    threshold: float,
    low: float = 0.01,
    high: float = 0.99,
) -> Degeneracy:
    """Flag a model whose decisions at ``threshold`` are (almost) constant within a group.

    A group's positive rate is the fraction of its rows with ``score >=
    threshold``; the model is degenerate when some group with rows has a rate
    below ``low`` or above ``high``. Labels do not enter, so none are asked for.
    """
    names = check_group_names(group_names)
    placeholder_labels = np.zeros(np.shape(scores))
    _, s, g = check_inputs(placeholder_labels, scores, groups, len(names))
    threshold = check_threshold(threshold)
    n = np.bincount(g, minlength=len(names))
    positive = np.bincount(g, weights=(s >= threshold).astype(np.float64), minlength=len(names))
    rates = {name: float(positive[k] / n[k]) for k, name in enumerate(names) if n[k] > 0}
    return _flag(rates, low, high)


def _pinned_threshold(
    y: np.ndarray, s: np.ndarray, criterion: str, level: float
) -> tuple[float, float]:
    """The threshold pinning the overall ``criterion`` at ``level``, and the value reached.

    Candidates are the cut points of :func:`fairtune.evaluation.metrics.choose_threshold`
    (midpoints between consecutive distinct scores, so each candidate is one
    distinct split of the rows). Specificity: the smallest candidate whose
    overall specificity is at least ``level`` (the most positives it allows).
    Sensitivity: the largest candidate whose overall sensitivity is at least
    ``level`` (the fewest positives it allows).
    """
    if criterion not in CRITERIA:
        raise FairtuneError(f"unknown criterion '{criterion}': use one of {list(CRITERIA)}")
    if not 0.0 < level < 1.0:
        raise FairtuneError(f"{criterion} level must lie strictly between 0 and 1, got {level}")
    label = 0.0 if criterion == "specificity" else 1.0
    own = np.sort(s[y == label])
    if len(own) == 0:
        raise FairtuneError(
            f"an operating point at a {criterion} needs rows with label {int(label)}: "
            "use a set with both classes"
        )
    cuts, _ = cut_points(s)
    below = np.searchsorted(own, cuts, side="left") / len(own)
    value = below if criterion == "specificity" else 1.0 - below
    ok = np.flatnonzero(value >= level)
    if len(ok) == 0:
        raise FairtuneError(
            f"no threshold in (0, 1) reaches overall {criterion} {level}: too many rows "
            f"scored exactly {'1' if criterion == 'specificity' else '0'}"
        )
    best = ok[0] if criterion == "specificity" else ok[-1]
    return float(cuts[best]), float(value[best])


def operating_points(
    y_true: Any,
    scores: Any,
    groups: Any,
    group_names: Sequence[str],
    levels: Sequence[tuple[str, float]] = DEFAULT_LEVELS,
    low: float = 0.01,
    high: float = 0.99,
) -> tuple[OperatingPoint, ...]:
    """Per-group TPR/FPR and equalized odds where overall specificity/sensitivity hit a level.

    ``levels`` lists ``(criterion, level)`` pairs, criterion one of
    :data:`CRITERIA`. The empirical rates move in steps, so the threshold is
    a cut point between distinct scores: for specificity the smallest whose
    overall specificity is >= level, for sensitivity the largest whose overall
    sensitivity is >= level (:func:`_pinned_threshold`). Each point carries the
    :class:`Degeneracy` of its decisions by ``low``/``high``. Undefined
    per-group rates raise the :class:`FairnessWarning` of ``binary_metrics``.
    """
    names = check_group_names(group_names)
    y, s, _ = check_inputs(y_true, scores, groups, len(names))
    points = []
    for criterion, level in levels:
        threshold, achieved = _pinned_threshold(y, s, criterion, level)
        m = binary_metrics(y_true, scores, groups, names, threshold)
        by_group = m["by_group"]
        points.append(
            OperatingPoint(
                criterion=criterion,
                level=float(level),
                threshold=threshold,
                achieved=achieved,
                tpr={name: v["tpr"] for name, v in by_group.items()},
                fpr={name: v["fpr"] for name, v in by_group.items()},
                eodds_mean=m["eodds_mean"],
                eodds_worst=m["eodds_worst"],
                accuracy=m["accuracy"],
                degenerate=_flag(
                    {name: v["positive_rate"] for name, v in by_group.items()}, low, high
                ),
                gaps={key: m[key] for key in GAP_KEYS},
            )
        )
    return tuple(points)


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC points (FPR, TPR) from (0, 0) to (1, 1), one per distinct score.

    As ``sklearn.metrics.roc_curve(drop_intermediate=False)``: tied scores
    make one point, so a tie is a straight (diagonal) segment.
    """
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(1.0 - y)[last_of_tie]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def _limit(fpr: np.ndarray, tpr: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The linearly interpolated ROC curve's limit at ``x`` from the left or right.

    A vertical step (several points at one FPR) has two limits; elsewhere both
    equal the curve's value.
    """
    if side == "right":
        lo = np.searchsorted(fpr, x, side="right") - 1
        hi = np.minimum(lo + 1, len(fpr) - 1)
    else:
        hi = np.searchsorted(fpr, x, side="left")
        lo = np.maximum(hi - 1, 0)
    width = fpr[hi] - fpr[lo]
    frac = np.divide(x - fpr[lo], width, out=np.zeros_like(x), where=width > 0)
    return tpr[lo] + frac * (tpr[hi] - tpr[lo])


def _area_between(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Exact integral over FPR in [0, 1] of |ROC_a - ROC_b| for piecewise-linear curves.

    Between consecutive breakpoints of either curve the difference is linear,
    so each piece integrates in closed form, splitting where it changes sign.
    """
    x = np.union1d(a[0], b[0])
    left = _limit(*a, x[:-1], "right") - _limit(*b, x[:-1], "right")
    right = _limit(*a, x[1:], "left") - _limit(*b, x[1:], "left")
    width = np.diff(x)
    same_sign = left * right >= 0
    total = np.abs(left) + np.abs(right)
    crossing = np.divide(left**2 + right**2, 2 * total, out=np.zeros_like(total), where=total > 0)
    return float(np.sum(width * np.where(same_sign, 0.5 * total, crossing)))


def abroca(y_true: Any, scores: Any, groups: Any, group_names: Sequence[str]) -> float:
    """Absolute between-ROC area (Gardner, Brooks & Baker 2019), largest over group pairs.

    Each group's ROC curve is its empirical ROC (:func:`_roc`) with straight
    lines between the points, as in the original; the area is the exact
    integral of |ROC_a(f) - ROC_b(f)| over the false-positive rate f in
    [0, 1]. A group with only one label has no ROC curve: a
    :class:`FairnessWarning` names it and it is left out, as in the gaps of
    :mod:`fairtune.evaluation.metrics`. NaN when fewer than two groups have curves.
    """
    names = check_group_names(group_names)
    y, s, g = check_inputs(y_true, scores, groups, len(names))
    curves = []
    for k, name in enumerate(names):
        yk = y[g == k]
        if len(yk) == 0:
            continue
        if yk.min() == yk.max():
            warnings.warn(
                f"group '{name}' has only label {int(yk[0])}: it has no ROC curve and is "
                "left out of ABROCA",
                FairnessWarning,
                stacklevel=2,
            )
            continue
        curves.append(_roc(yk, s[g == k]))
    if len(curves) < 2:
        warnings.warn(
            "ABROCA is undefined (NaN): it needs two groups with both labels",
            FairnessWarning,
            stacklevel=2,
        )
        return float("nan")
    return max(_area_between(a, b) for a, b in itertools.combinations(curves, 2))
