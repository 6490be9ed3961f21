"""Typed metrics of one model on one set: what an evaluation hands to the stages above it.

:class:`Metrics` holds the top-level metrics of :data:`fairtune.evaluation.metrics.METRICS` at one
threshold, :class:`GroupMetrics` each group's, and the verdicts a shifted threshold cannot
game (the :class:`~fairtune.evaluation.operating.OperatingPoint` s, ABROCA, the degenerate flag);
:class:`Intervals` their bootstrap intervals. They become dicts only at the JSON/CSV edge
(``to_dict``, with the keys results.json has always had) and are read back by
``from_dict``. A metric chosen by its key (the criterion's, a table column's) is read with
:meth:`Metrics.value`, which refuses a key :data:`~fairtune.evaluation.metrics.METRICS` does
not declare.

Adding a metric: declare it in :data:`~fairtune.evaluation.metrics.METRICS`, compute it there,
and add its field here (to :class:`GroupMetrics` too when it is given per group); a test holds
the fields to the declarations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fairtune.errors import FairtuneError
from fairtune.evaluation.metrics import METRIC_KEYS, METRICS
from fairtune.evaluation.operating import Degeneracy, OperatingPoint
from fairtune.io import number

VALUE_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.overall or m.curve)
"""The metrics with one value per model, in display order: those :meth:`Metrics.value`
reads."""


@dataclass(frozen=True)
class GroupMetrics:
    """One group's metrics at a threshold (the per-group metrics of ``METRICS``); a rate the
    group lacks the rows for is NaN."""

    n: int
    positives: int
    auc: float
    accuracy: float
    tpr: float
    fpr: float
    positive_rate: float
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: one key per field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GroupMetrics:
        """A group's metrics from their JSON form (null read as NaN)."""
        counts = {f.name for f in fields(cls) if f.type == "int"}
        return cls(**{k: int(v) if k in counts else number(v) for k, v in d.items()})


@dataclass(frozen=True)
class Verdicts:
    """What a shifted threshold cannot game (METHODS.md, "Verdicts"): the operating points
    by key (None where no threshold reaches one), ABROCA, and the degenerate flag at the
    threshold."""

    operating_points: Mapping[str, OperatingPoint | None]
    abroca: float
    degenerate: Degeneracy


@dataclass(frozen=True)
class Metrics:
    """A model's metrics on one set at ``threshold``: the top-level metrics (NaN where
    undefined), each group's, and the verdicts: the operating points (None where no
    threshold reaches one), ABROCA, and whether some group gets (almost) one decision."""

    auc: float
    accuracy: float
    balanced_accuracy: float
    f1: float
    positive_rate: float
    eodds_mean: float
    eodds_worst: float
    eopp: float
    dp: float
    worst_group_auc: float
    auc_gap: float
    ece: float
    threshold: float
    n: int
    by_group: Mapping[str, GroupMetrics]
    operating_points: Mapping[str, OperatingPoint | None]
    abroca: float
    degenerate: bool
    degenerate_groups: tuple[str, ...]

    def value(self, key: str) -> float:
        """The value of the declared metric ``key`` (one of :data:`VALUE_KEYS`)."""
        if key not in VALUE_KEYS:
            raise FairtuneError(f"unknown metric {key!r}: choose one of {', '.join(VALUE_KEYS)}")
        return float(getattr(self, key))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form results.json holds (the keys
        :func:`fairtune.evaluation.metrics.binary_metrics` writes, then the verdicts)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["by_group"] = {name: g.to_dict() for name, g in self.by_group.items()}
        out["operating_points"] = {
            key: None if p is None else p.to_dict() for key, p in self.operating_points.items()
        }
        out["degenerate_groups"] = list(self.degenerate_groups)
        return out

    @classmethod
    def of(cls, at: Mapping[str, Any], verdicts: Verdicts) -> Metrics:
        """The metrics of :func:`fairtune.evaluation.metrics.binary_metrics` (``at``) with the
        verdicts at the same threshold."""
        return cls(
            **{key: float(at[key]) for key in METRIC_KEYS},
            threshold=float(at["threshold"]),
            n=int(at["n"]),
            by_group={name: GroupMetrics(**g) for name, g in at["by_group"].items()},
            operating_points=verdicts.operating_points,
            abroca=verdicts.abroca,
            degenerate=verdicts.degenerate.flagged,
            degenerate_groups=verdicts.degenerate.groups,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metrics:
        """Metrics from their JSON form (:meth:`to_dict`, or ``binary_metrics`` with the
        verdicts of :func:`fairtune.evaluation.evaluate.verdicts`). A file written before a
        metric or the verdicts were reported reads them as NaN, none and not degenerate; the
        rows of a model no setting could fit lack ``n``."""
        return cls(
            **{key: number(d.get(key)) for key in VALUE_KEYS},
            threshold=number(d["threshold"]),
            n=int(d.get("n", 0)),
            by_group={name: GroupMetrics.from_dict(g) for name, g in d["by_group"].items()},
            operating_points={
                key: None if p is None else OperatingPoint.from_dict(p)
                for key, p in d.get("operating_points", {}).items()
            },
            degenerate=bool(d.get("degenerate", False)),
            degenerate_groups=tuple(d.get("degenerate_groups", ())),
        )

    @classmethod
    def undefined(cls) -> Metrics:
        """The metrics of a model that could not be fitted: every value NaN, no rows, no
        groups, no operating point."""
        return cls(
            **dict.fromkeys(VALUE_KEYS, math.nan),
            threshold=math.nan,
            n=0,
            by_group={},
            operating_points={},
            degenerate=False,
            degenerate_groups=(),
        )


@dataclass(frozen=True)
class Intervals:
    """Bootstrap intervals ``(low, high)`` of top-level metrics, by metric key
    (:func:`fairtune.evaluation.metrics.bootstrap_ci`)."""

    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, key: str) -> tuple[float, float] | None:
        """The interval of the declared metric ``key``; None where none was drawn."""
        if key not in VALUE_KEYS:
            raise FairtuneError(f"unknown metric {key!r}: choose one of {', '.join(VALUE_KEYS)}")
        return self.bounds.get(key)

    def to_dict(self) -> dict[str, list[float]]:
        """The JSON form: ``[low, high]`` per key."""
        return {key: [low, high] for key, (low, high) in self.bounds.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Intervals | None:
        """Intervals from their JSON form (None stays None: none were drawn)."""
        if d is None:
            return None
        return cls({key: (number(low), number(high)) for key, (low, high) in d.items()})


@dataclass(frozen=True)
class Evaluation:
    """What evaluating a model on one set gives: its metrics at a threshold and, where
    bootstrap resamples were drawn, their intervals."""

    metrics: Metrics
    intervals: Intervals | None
