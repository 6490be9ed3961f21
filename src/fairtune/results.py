"""Result rows of a comparison and their summaries over seeds.

One :class:`ResultRow` per (method, seed); ``to_dict`` is its results.json form.
Besides the methods' rows a comparison has a ``threshold_optimizer`` reference
row and a ``selected`` row (the one choice across methods) per seed; a method
whose every setting failed has a row with ``failed`` set and NaN metrics. A
comparison on several test sets has all these rows once per test set, each
naming its ``test_set``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fairtune.criterion import Criterion
from fairtune.methods.registry import SELECTED
from fairtune.metrics import METRICS
from fairtune.records import ChoiceRecord, Record, record_from_dict


@dataclass
class ResultRow:
    """One method at one seed: its settings, cost, threshold and test metrics."""

    method: str
    seed: int
    config: dict[str, Any]
    wall_time_s: float
    threshold: float
    threshold_rule: str
    metrics: dict[str, Any]  # on the test set at threshold 0.5
    metrics_tuned: dict[str, Any]  # on the test set at ``threshold``
    ci: dict[str, Any] | None
    ci_tuned: dict[str, Any] | None
    selection: Record  # how the row was chosen: one record type per kind of row
    arch: str | None = None  # the image model's architecture, where one was named
    failed: str | None = None  # why no setting of the method could be fitted
    needs_sensitive_attribute_at_prediction: bool = False  # group thresholds do
    test_set: str | None = None  # the test set measured, where a comparison has several

    def __repr__(self) -> str:
        """The row in one line: method, seed, AUC and the default objective's metric at t
        and at 0.5."""
        key = Criterion().key
        ci = (self.ci_tuned or {}).get(key)
        bounds = "" if not ci or None in ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        where = "" if self.test_set is None else f", test {self.test_set}"
        status = f", failed: {self.failed}" if self.failed else ""
        return (
            f"ResultRow({self.method}, seed {self.seed}{where}: AUC "
            f"{_number(self.metrics.get('auc'))}, {key} {_number(self.metrics_tuned.get(key))}"
            f"{bounds} at t={self.threshold:.3f}, {_number(self.metrics.get(key))} at 0.5; "
            f"settings {self.config}{status})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json holds it (``arch``, ``failed``,
        ``needs_sensitive_attribute_at_prediction`` and ``test_set`` only where set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["selection"] = self.selection.to_dict()
        for key in ("arch", "failed", "needs_sensitive_attribute_at_prediction", "test_set"):
            if not out[key]:
                del out[key]
        return out

    def operating_points(self) -> dict[str, Any]:
        """The row's operating points (threshold-free, so read from the metrics at 0.5), by
        key, e.g. ``specificity_0.8``; a point no threshold reaches is None."""
        return self.metrics.get("operating_points") or {}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRow:
        """A row as results.json holds it (:meth:`to_dict`), read back."""
        return cls(**{**d, "selection": record_from_dict(d["method"], d["selection"])})


def by_test_set(rows: Sequence[ResultRow]) -> dict[str | None, list[ResultRow]]:
    """The rows per test set, in order of first appearance (one key, ``None``, for a
    comparison on one test set)."""
    out: dict[str | None, list[ResultRow]] = {}
    for row in rows:
        out.setdefault(row.test_set, []).append(row)
    return out


def no_metrics() -> dict[str, Any]:
    """The metrics of a model that could not be fitted: every one NaN, no groups."""
    scalars = [m.key for m in METRICS if m.overall or m.curve]
    return {
        **dict.fromkeys(scalars, math.nan),
        "threshold": math.nan,
        "by_group": {},
        "operating_points": {},
        "degenerate": False,
        "degenerate_groups": [],
    }


def summarise(rows: Sequence[ResultRow], key: str, tuned: bool = False) -> dict[str, Any]:
    """Per method: mean, standard deviation over seeds and (one seed) the bootstrap interval
    of metric ``key`` (or of ``wall_time_s``)."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        values = np.array([_value(r, key, tuned) for r in mine], dtype=float)
        ci = (mine[0].ci_tuned if tuned else mine[0].ci) if len(mine) == 1 else None
        some = not np.isnan(values).all()  # numpy warns on a mean of no value: none asked
        out[method] = {
            "mean": float(np.nanmean(values)) if some else math.nan,
            "std": float(np.nanstd(values)) if len(values) > 1 and some else math.nan,
            "ci": None if ci is None else ci.get(key),
            "n_seeds": len(mine),
        }
    return out


def degenerate_methods(rows: Sequence[ResultRow], tuned: bool) -> set[str]:
    """The methods degenerate (in some seed) at threshold t (``tuned``) or 0.5."""
    return {r.method for r in rows if (r.metrics_tuned if tuned else r.metrics).get("degenerate")}


def selection_summary(rows: Sequence[ResultRow]) -> dict[str, Any]:
    """The ``selected`` rows in brief: per seed what was kept, why, and the selection
    regret (test EOdds of the choice minus the best within the AUC tolerance on test);
    with the regret's mean and standard deviation over seeds."""
    chosen = [r.selection for r in rows if r.method == SELECTED]
    assert all(isinstance(c, ChoiceRecord) for c in chosen)
    regret = np.array([c.regret for c in chosen], dtype=float)
    defined = regret[~np.isnan(regret)]
    return {
        "per_seed": [
            {
                "seed": r.seed,
                "method": r.selection.method,
                "setting": r.selection.setting,
                "reason": r.selection.reason,
                "regret": r.selection.regret,
                "cost": r.selection.cost,
            }
            for r in rows
            if isinstance(r.selection, ChoiceRecord) and r.method == SELECTED
        ],
        "regret_mean": float(defined.mean()) if len(defined) else math.nan,
        "regret_std": float(defined.std()) if len(defined) > 1 else math.nan,
    }


def _number(value: Any) -> str:
    """A metric's value with three decimals (n/a where undefined)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _value(row: ResultRow, key: str, tuned: bool) -> float:
    if key == "wall_time_s":
        return row.wall_time_s
    return (row.metrics_tuned if tuned else row.metrics)[key]
